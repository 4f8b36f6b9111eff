// A header checkbox ticks or clears every row checkbox of its form (rows name the form they belong to).
// Without this file the header box stays hidden and rows are ticked one by one.
(function () {
  "use strict";

  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var rows = 'input[type="checkbox"][form="' + all.dataset.selectAll + '"]';
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll(rows).forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
})();
