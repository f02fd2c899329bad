// Choosing a language submits the switcher at once (no inline handler: the CSP allows none).
document.querySelectorAll("form.lang select").forEach(function (select) {
  select.addEventListener("change", function () {
    select.form.submit();
  });
});
