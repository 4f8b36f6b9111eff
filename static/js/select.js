// A select-all checkbox ticks or clears every row checkbox of its form (rows name the form they belong to).
// Without this file the box stays hidden and rows are ticked one by one.
(function () {
  "use strict";

  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var rows = 'input[type="checkbox"][form="' + all.dataset.selectAll + '"]';
    // The box is hidden, or the label around it, until this file can make it work.
    (all.closest("label") || all).hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll(rows).forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
})();
