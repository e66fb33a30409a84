// Progressive enhancement only: every page works without this file.
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  document.addEventListener('DOMContentLoaded', function () {
    // Tabs: links to #panel ids; without script every panel is shown in order.
    document.querySelectorAll('[data-tabs]').forEach(function (bar) {
      var links = bar.querySelectorAll('a[href^="#"]');
      function show(id) {
        links.forEach(function (a) {
          var on = a.getAttribute('href') === '#' + id;
          a.setAttribute('aria-selected', on ? 'true' : 'false');
          var panel = document.getElementById(a.getAttribute('href').slice(1));
          if (panel) { panel.hidden = !on; }
        });
      }
      links.forEach(function (a) {
        a.setAttribute('role', 'tab');
        a.addEventListener('click', function (e) {
          e.preventDefault();
          show(a.getAttribute('href').slice(1));
          history.replaceState(null, '', a.getAttribute('href'));
        });
      });
      // Open the tab holding the first error, else the one in the URL, else the first.
      var err = document.querySelector('[data-tab-panel] .has-error, [data-tab-panel] #test-report, [data-tab-panel] .notice[role=status]');
      var start = err ? err.closest('[data-tab-panel]').id
        : (location.hash && document.getElementById(location.hash.slice(1)) ? location.hash.slice(1) : null);
      if (!start && links.length) { start = links[0].getAttribute('href').slice(1); }
      if (start) { show(start); }
    });
    // Copy buttons next to code blocks.
    document.querySelectorAll('[data-copy]').forEach(function (pre) {
      if (!navigator.clipboard) { return; }
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'secondary small copy';
      b.textContent = 'Copy';
      b.addEventListener('click', function () {
        navigator.clipboard.writeText(pre.textContent).then(function () {
          b.textContent = 'Copied';
          setTimeout(function () { b.textContent = 'Copy'; }, 1500);
        });
      });
      pre.parentNode.classList.add('copy-wrap');
      pre.parentNode.insertBefore(b, pre);
    });
    // Optional: read an OpenAPI file into the textarea.
    var file = document.getElementById('f-openapi_file');
    if (file) {
      file.addEventListener('change', function () {
        var f = file.files && file.files[0];
        if (!f) { return; }
        f.text().then(function (t) { document.getElementById('f-openapi').value = t; });
      });
    }
  });
})();
