// Click-to-call: one WebRTC audio call to the voicebot. Plain JS, no build step.
// Signalling: POST /api/offer with the complete offer (ICE gathered first, so no trickle is needed).
"use strict";

const callButton = document.getElementById("call-button");
const hangupButton = document.getElementById("hangup-button");
const statusText = document.getElementById("status");
const botAudio = document.getElementById("bot-audio");

let peer = null;
let microphone = null;

function setStatus(state, text) {
  statusText.dataset.state = state;
  statusText.textContent = text;
  const inCall = state === "connecting" || state === "connected";
  callButton.disabled = inCall;
  hangupButton.disabled = !inCall;
}

function waitForIceGathering(pc, timeoutMs) {
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

function releaseMedia() {
  if (microphone) microphone.getTracks().forEach((track) => track.stop());
  microphone = null;
  if (peer) peer.close();
  peer = null;
  botAudio.srcObject = null;
}

function endCall(text) {
  releaseMedia();
  setStatus("ended", text || "Beendet. Vielen Dank für Ihren Anruf.");
}

function failCall(text) {
  releaseMedia();
  setStatus("error", "Fehler: " + text);
}

async function startCall() {
  setStatus("connecting", "Mikrofon wird angefragt …");
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (error) {
    failCall("Kein Zugriff auf das Mikrofon. Bitte erlauben Sie den Mikrofonzugriff und versuchen Sie es erneut.");
    return;
  }

  setStatus("connecting", "Verbindet …");
  const pc = new RTCPeerConnection();
  peer = pc;
  pc.addTransceiver(microphone.getAudioTracks()[0], { direction: "sendrecv", streams: [microphone] });
  const channel = pc.createDataChannel("voicebot", { ordered: true });
  channel.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (_) { return; }
    const inner = message && message.message;
    if (message.type === "signalling" && inner && inner.type === "peerLeft") {
      endCall("Beendet. Der Assistent hat aufgelegt.");
    }
  });

  pc.addEventListener("track", (event) => {
    if (event.track.kind === "audio") {
      botAudio.srcObject = event.streams[0] || new MediaStream([event.track]);
      botAudio.play().catch(() => {});
    }
  });
  pc.addEventListener("connectionstatechange", () => {
    if (peer !== pc) return;
    if (pc.connectionState === "connected") {
      setStatus("connected", "Verbunden. Bitte sprechen Sie jetzt.");
    } else if (pc.connectionState === "failed") {
      failCall("Die Verbindung ist abgebrochen. Bitte versuchen Sie es erneut.");
    } else if (pc.connectionState === "closed" || pc.connectionState === "disconnected") {
      endCall("Beendet. Die Verbindung wurde getrennt.");
    }
  });

  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 3000);
    const response = await fetch("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (!response.ok) {
      let detail = "Der Server hat die Verbindung abgelehnt (" + response.status + ").";
      try {
        const body = await response.json();
        if (body && body.detail) detail = body.detail;
      } catch (_) { /* keep the generic message */ }
      failCall(detail);
      return;
    }
    const answer = await response.json();
    if (peer !== pc) return; // hung up while waiting
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  } catch (error) {
    failCall("Der Server ist nicht erreichbar. Bitte versuchen Sie es später erneut.");
  }
}

callButton.addEventListener("click", () => { startCall(); });
hangupButton.addEventListener("click", () => { endCall("Beendet. Sie haben aufgelegt."); });
window.addEventListener("pagehide", releaseMedia);
