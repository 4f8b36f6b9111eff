// Progressive enhancement of the settings pages: every form works without this file.
// The live criteria check is htmx (attributes in the template); this file adds the rest.
(function () {
  "use strict";

  // Drag a stage row to reorder; dropping submits the form with every key in the new order.
  function setUpSortable(tbody) {
    var dragged = null;
    tbody.addEventListener("dragstart", function (event) {
      dragged = event.target.closest("tr");
      if (!dragged) return;
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.key);
    });
    tbody.addEventListener("dragover", function (event) {
      var over = event.target.closest("tr");
      if (!dragged || !over || over === dragged) return;
      event.preventDefault();
      var box = over.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      tbody.insertBefore(dragged, after ? over.nextSibling : over);
    });
    tbody.addEventListener("drop", function (event) {
      event.preventDefault();
    });
    tbody.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      tbody.closest("form").submit();
    });
  }

  function setUpConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  function setUpCopy(button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copy);
      input.select();
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "Copied";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    document.querySelectorAll("tbody[data-sortable]").forEach(setUpSortable);
    document.querySelectorAll("form[data-confirm]").forEach(setUpConfirm);
    document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
    document.querySelectorAll("input[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  });
})();

