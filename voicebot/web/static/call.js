// Click-to-call: one WebRTC audio call to the voicebot, with live captions and the call state. Plain JS, no build.
// Signalling: POST /api/offer with the complete offer (ICE gathered first, so no trickle is needed).
// Captions and state arrive as JSON messages on the call's own data channel (voicebot/pipeline/captions.py).
"use strict";

const callButton = document.getElementById("call-button");
const hangupButton = document.getElementById("hangup-button");
const statusText = document.getElementById("status");
const captions = document.getElementById("captions");
const botAudio = document.getElementById("bot-audio");

const MAX_CAPTIONS = 200; // oldest lines are dropped: the page stays light in a long call
const STATE_TEXT = {
  idle: "Bereit.",
  connecting: "Verbindung wird aufgebaut",
  listening: "Ich höre zu",
  answering: "Ich antworte",
  handoff: "Verbinde mit einer Mitarbeiterin oder einem Mitarbeiter",
  ended: "Anruf beendet",
};
const IN_CALL = new Set(["connecting", "listening", "answering", "handoff"]);

let peer = null;
let microphone = null;

function setStatus(state, text) {
  if (statusText.dataset.state === state && statusText.textContent === text) return;
  const focusInButtons = document.activeElement === callButton || document.activeElement === hangupButton;
  statusText.dataset.state = state;
  statusText.textContent = text;
  const inCall = IN_CALL.has(state);
  callButton.disabled = inCall;
  hangupButton.disabled = !inCall;
  // Keyboard users keep their place: focus moves to the button that is usable now.
  if (focusInButtons || document.activeElement === document.body) {
    (inCall ? hangupButton : callButton).focus();
  }
}

function addCaption(speaker, text) {
  const line = document.createElement("p");
  line.className = "caption " + (speaker === "caller" ? "caller" : "bot");
  const who = document.createElement("span");
  who.className = "speaker";
  who.textContent = speaker === "caller" ? "Verstanden von Ihnen: " : "Assistent: ";
  line.appendChild(who);
  line.appendChild(document.createTextNode(String(text)));
  captions.appendChild(line);
  while (captions.childElementCount > MAX_CAPTIONS) captions.removeChild(captions.firstElementChild);
  captions.scrollTop = captions.scrollHeight;
}

function onServerMessage(message) {
  if (!message || message.type !== "voicebot") return;
  if (message.kind === "caption" && typeof message.text === "string") {
    addCaption(message.speaker, message.text);
  } else if (message.kind === "state" && Object.hasOwn(STATE_TEXT, message.state)) {
    if (!IN_CALL.has(statusText.dataset.state)) return; // hung up or failed already
    if (message.state === "ended") {
      // The bot said goodbye; its hang-up ("peerLeft") follows and releases the media.
      setStatus("ended", STATE_TEXT.ended + ". Der Assistent hat aufgelegt.");
    } else {
      setStatus(message.state, STATE_TEXT[message.state]);
    }
  }
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

function endCall(reason) {
  releaseMedia();
  setStatus("ended", STATE_TEXT.ended + ". " + reason);
}

function failCall(text) {
  releaseMedia();
  setStatus("error", "Fehler: " + text);
}

async function startCall() {
  captions.replaceChildren();
  setStatus("connecting", STATE_TEXT.connecting);
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (error) {
    failCall("Kein Zugriff auf das Mikrofon. Bitte erlauben Sie den Mikrofonzugriff und versuchen Sie es erneut.");
    return;
  }

  const pc = new RTCPeerConnection();
  peer = pc;
  pc.addTransceiver(microphone.getAudioTracks()[0], { direction: "sendrecv", streams: [microphone] });
  const channel = pc.createDataChannel("voicebot", { ordered: true });
  channel.addEventListener("message", (event) => {
    if (peer !== pc) return;
    let message;
    try { message = JSON.parse(event.data); } catch (_) { return; }
    const inner = message && message.message;
    if (message && message.type === "signalling" && inner && inner.type === "peerLeft") {
      endCall("Der Assistent hat aufgelegt.");
    } else {
      onServerMessage(message);
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
      if (statusText.dataset.state === "connecting") setStatus("listening", STATE_TEXT.listening);
    } else if (pc.connectionState === "failed") {
      failCall("Die Verbindung ist abgebrochen. Bitte versuchen Sie es erneut.");
    } else if (pc.connectionState === "closed" || pc.connectionState === "disconnected") {
      endCall("Die Verbindung wurde getrennt.");
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
    if (peer === pc) failCall("Der Server ist nicht erreichbar. Bitte versuchen Sie es später erneut.");
  }
}

callButton.addEventListener("click", () => { startCall(); });
hangupButton.addEventListener("click", () => { endCall("Sie haben aufgelegt."); });
window.addEventListener("pagehide", releaseMedia);
