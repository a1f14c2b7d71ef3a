// SpiderGate dashboard: the only first-party script. Copy buttons, confirm before dangerous
// forms, and the theme toggle. Every page works without it.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = localStorage.getItem("sg-theme");
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);
  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      var text = source && ("value" in source ? source.value : source.textContent);
      if (text && navigator.clipboard) {
        navigator.clipboard.writeText(text).then(function () { copy.textContent = "Copied"; });
      }
    }
    if (event.target.closest("[data-theme-toggle]")) {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.hasAttribute("data-theme") && matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      localStorage.setItem("sg-theme", next);
    }
  });
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !confirm(question)) event.preventDefault();
  });
})();
