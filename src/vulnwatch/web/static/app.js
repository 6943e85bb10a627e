// vulnwatch: small progressive enhancements (the pages work without them).
(function () {
  "use strict";
  function init() {
    // Filter forms submit themselves when a select or a checkbox changes.
    Array.prototype.forEach.call(document.querySelectorAll("form[data-autosubmit]"), function (form) {
      form.addEventListener("change", function (ev) {
        var t = ev.target;
        if (t && (t.tagName === "SELECT" || t.type === "checkbox")) form.requestSubmit ? form.requestSubmit() : form.submit();
      });
    });
    // Re-queue buttons: one click, then disabled while the delivery runs.
    Array.prototype.forEach.call(document.querySelectorAll("button.requeue"), function (b) {
      b.form.addEventListener("submit", function () { b.disabled = true; b.textContent = "delivering…"; });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
