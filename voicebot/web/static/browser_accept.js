// "Im Browser annehmen" in the staff console (voicebot/web/browser_accept.py): one WebRTC audio connection from this
// page's microphone to the server that holds the waiting phone caller. Plain JS, no build.
// - shows the buttons only where the browser can do WebRTC with a microphone (class "webrtc" on <html>);
// - a click asks for the microphone, sends the offer (ICE gathered first) and plays the caller's voice;
// - asks GET /konsole/im-browser/status every second while the call is open: "Verbunden", or how it ended
//   (the caller hung up, the connection failed); "Auflegen" ends the call for both sides.
"use strict";

(() => {
  const panel = document.getElementById("im-browser");
  if (!panel) return;
  const status = document.getElementById("im-browser-status");
  const hangUp = document.getElementById("im-browser-auflegen");
  const wrapUp = document.getElementById("im-browser-abschluss");
  const details = document.getElementById("im-browser-gespraech"); // summary and transcript, in another tab
  const voice = document.getElementById("im-browser-ton");
  const csrf = panel.dataset.csrf;
  const supported = Boolean(
    window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia,
  );
  if (supported) document.documentElement.classList.add("webrtc");

  let peer = null;
  let microphone = null;
  let watcher = null;
  let entry = null;
  window.staffBrowserPeer = () => peer; // for the page's own checks (inbound audio statistics)

  function say(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  function gathered(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, timeoutMs);
    });
  }

  function release() {
    if (watcher) window.clearInterval(watcher);
    watcher = null;
    if (microphone) microphone.getTracks().forEach((track) => track.stop());
    microphone = null;
    if (peer) peer.close();
    peer = null;
    voice.srcObject = null;
  }

  function ended(text, putThrough) {
    release();
    say(text, "ended");
    hangUp.hidden = true;
    details.hidden = true;
    if (entry && putThrough) {
      wrapUp.href = `/konsole/gespraech/${entry}`;
      wrapUp.hidden = false;
    }
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      body: JSON.stringify({ csrf, ...body }),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    return { ok: response.ok, data };
  }

  async function watch() {
    try {
      const response = await fetch("/konsole/im-browser/status", {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) return;
      const data = await response.json();
      if (data.state === "connected" && status.dataset.state !== "connected") say(data.text, "connected");
      if (data.state === "ended") ended(data.text, data.verbunden);
    } catch (error) {
      // The server is briefly unreachable: the next second asks again.
    }
  }

  async function accept(id) {
    if (peer) return;
    entry = id;
    panel.hidden = false;
    wrapUp.hidden = true;
    details.hidden = true;
    say("Mikrofon wird freigegeben …", "connecting");
    document.getElementById("im-browser-titel").focus();
    try {
      microphone = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      say("Ohne Mikrofon kann der Anruf nicht im Browser angenommen werden. Bitte erlauben Sie den Zugriff "
        + "oder nehmen Sie am Telefon an.", "failed");
      return;
    }
    peer = new RTCPeerConnection();
    peer.addTransceiver(microphone.getAudioTracks()[0], { direction: "sendrecv", streams: [microphone] });
    peer.addEventListener("track", (event) => {
      voice.srcObject = event.streams[0] || new MediaStream([event.track]);
      voice.play().catch(() => {});
    });
    peer.addEventListener("connectionstatechange", () => {
      if (peer && peer.connectionState === "failed") {
        ended("Die Verbindung ist abgebrochen; der Anruf wurde beendet.", true);
      }
    });
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await gathered(peer, 3000);
      const { ok, data } = await post("/konsole/im-browser", {
        eintrag: id, sdp: peer.localDescription.sdp, type: "offer",
      });
      if (!ok) {
        release();
        say(data.detail || "Der Anruf konnte nicht angenommen werden.", "failed");
        return;
      }
      await peer.setRemoteDescription(data);
    } catch (error) {
      release();
      say("Die Verbindung konnte nicht aufgebaut werden. Bitte nehmen Sie am Telefon an.", "failed");
      return;
    }
    say("Verbindung wird aufgebaut …", "connecting");
    details.href = `/konsole/gespraech/${id}`;
    details.hidden = false;
    hangUp.hidden = false;
    watcher = window.setInterval(watch, 1000);
  }

  hangUp.addEventListener("click", async () => {
    hangUp.disabled = true;
    let data = {};
    try {
      data = (await post("/konsole/im-browser/auflegen", {})).data;
    } catch (error) {
      data = {};
    } finally {
      hangUp.disabled = false;
      ended(data.text || "Sie haben aufgelegt.", data.verbunden !== false);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.im-browser");
    if (button && supported) accept(button.dataset.eintrag);
  });
})();
