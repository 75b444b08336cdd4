// hotdesk admin: the emergency-call banner. Polls the calls of the last minutes, shows
// who called, from which desk and location, and sounds an alarm for every new call.
(function () {
  "use strict";
  var banner = document.getElementById("emergency-banner");
  if (!banner) return;
  var seen = null;
  var audio = null;

  function alarm() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.5, 1.0].forEach(function (at) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.2;
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(audio.currentTime + at); osc.stop(audio.currentTime + at + 0.35);
      });
    } catch (e) { /* no audio: the banner still shows */ }
  }

  function line(call) {
    var div = document.createElement("div");
    var who = (call.user ? call.user + " (" + call.extension + ")" : call.extension);
    var strong = document.createElement("strong");
    strong.textContent = "EMERGENCY CALL to " + call.number + " from " + who;
    div.appendChild(strong);
    div.appendChild(document.createTextNode(
      " at " + (call.desk || "unknown desk") + " · " + (call.location || "location unknown") +
      " · callback " + (call.callback || "–") + " · " + call.at));
    div.setAttribute("data-call", call.call_id);
    return div;
  }

  function poll() {
    fetch(banner.getAttribute("data-poll"), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : {calls: []}; })
      .then(function (data) {
        var ids = data.calls.map(function (c) { return c.call_id; });
        banner.replaceChildren.apply(banner, data.calls.map(line));
        banner.classList.toggle("d-none", data.calls.length === 0);
        if (seen !== null && ids.some(function (id) { return seen.indexOf(id) === -1; })) alarm();
        seen = ids;
      })
      .catch(function () { /* next round */ });
  }
  poll();
  setInterval(poll, 2000);
})();
