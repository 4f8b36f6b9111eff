// Draws every <canvas data-chart="ID"> from the JSON config in <script type="application/json" id="ID">.
// The pages embed data only; no inline script runs, so a strict Content-Security-Policy holds.
(function () {
  "use strict";

  function draw() {
    if (typeof Chart === "undefined") {
      return;
    }
    var reduceMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
    Chart.defaults.color = "#3b4455";
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.chart);
      if (!source || canvas.dataset.drawn) {
        return;
      }
      var config = JSON.parse(source.textContent);
      config.options = Object.assign({ responsive: true, maintainAspectRatio: false }, config.options || {});
      if (reduceMotion) {
        config.options.animation = false;
      }
      config.options.plugins = Object.assign({ legend: { position: "bottom" } }, config.options.plugins || {});
      new Chart(canvas, config);
      canvas.dataset.drawn = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  // Charts inside content that htmx swaps in are drawn too.
  document.addEventListener("htmx:afterSettle", draw);
})();
