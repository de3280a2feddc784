/* Injected into the page made from tests/data/reports/hostile.json, whose
 * names, messages and logs hold markup: none of it may become markup. */
(function () {
  var out = [];
  function check(ok, what) { out.push((ok ? 'ok ' : 'not ok ') + what); }
  check(document.querySelectorAll('img').length === 0, 'no <img> element came from the data');
  check(document.scripts.length === 2, 'two scripts: the page and this check (' + document.scripts.length + ')');
  check(document.querySelectorAll('b, i').length === 0, 'no <b> or <i> element came from the data');
  var names = [];
  document.querySelectorAll('g.node').forEach(function (n) { names.push(n.getAttribute('data-name')); });
  check(names.length === 4, 'four nodes in the graph (' + names.length + ')');
  check(names.indexOf('<img src=x onerror=alert(1)>') >= 0, 'a node name with markup is kept as text');
  var log = null;
  document.querySelectorAll('pre.log').forEach(function (p) {
    if (p.textContent.indexOf("<script>alert('log')<\/script>") === 0) log = p;
  });
  check(log !== null, 'the log with a <script> tag is shown as text');
  check(log !== null && log.textContent.indexOf('::error file=x,line=1::forged annotation') >= 0,
        'the rest of the log is there');
  check(document.title.indexOf('evil<script>') === 0, 'the title is text (' + document.title + ')');
  var pre = document.createElement('pre');
  pre.id = 'browser-check';
  pre.textContent = out.join('\n') + '\ndone ' + out.length + ' checks\n';
  document.body.appendChild(pre);
})();
