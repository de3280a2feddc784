/* Injected before </body> of a copy of the seed's HTML report by
 * check_html.sh; what it finds is written into a pre element with the id
 * browser-check, which chromium --dump-dom prints. */
(function () {
  var out = [];
  function check(ok, what) { out.push((ok ? 'ok ' : 'not ok ') + what); }
  function fill(el) { return el ? getComputedStyle(el).fill : 'none'; }
  var RED = 'rgb(233, 109, 118)', GREEN = 'rgb(24, 190, 148)';

  var work = document.querySelector('g.node[data-name="work"]');
  check(work !== null, 'the graph has a node named work');
  if (work) {
    var rect = work.querySelector('rect');
    check(work.getAttribute('data-phase') === 'Failed', 'work has data-phase Failed');
    check(fill(rect) === RED, 'work is drawn red (fill ' + fill(rect) + ')');
    check(work.getBoundingClientRect().width > 100, 'work is laid out with a visible box');
  }
  var eh = document.querySelector('g.node.exit-handler[data-exit-handler="true"]');
  check(eh !== null, 'the graph has the exit handler node');
  if (eh) {
    check(eh.getAttribute('data-phase') === 'Succeeded', 'the exit handler has data-phase Succeeded');
    check(fill(eh.querySelector('rect')) === GREEN,
          'the exit handler is drawn green (fill ' + fill(eh.querySelector('rect')) + ')');
    var right = 0;
    document.querySelectorAll('g.node:not(.exit-handler)').forEach(function (n) {
      right = Math.max(right, n.getBoundingClientRect().right);
    });
    check(eh.getBoundingClientRect().left > right, 'the exit handler is drawn apart, right of the workflow');
  }
  var frame = document.querySelector('.exit-handler-frame .frame-label');
  check(frame !== null && /EXIT HANDLER/.test(frame.textContent), 'the exit handler frame is labelled');
  var group = document.querySelector('g.node.small[data-type="StepGroup"]');
  check(group !== null && fill(group.querySelector('circle')) === RED, 'the failed step group is a red dot');
  var ev = document.querySelector('li[data-kind="exit-handler-started"]');
  check(ev !== null && ev.textContent.indexOf('{{workflow.status}}=Failed') >= 0,
        'the timeline says the handler saw {{workflow.status}}=Failed');
  var log = document.querySelector('details.node-details[data-phase="Failed"] pre.log');
  check(log !== null && log.textContent === 'Doing work...\n', 'the work node shows its log');
  check(performance.getEntriesByType('resource').length === 0, 'nothing was fetched');

  var pre = document.createElement('pre');
  pre.id = 'browser-check';
  pre.textContent = out.join('\n') + '\ndone ' + out.length + ' checks\n';
  document.body.appendChild(pre);
})();
