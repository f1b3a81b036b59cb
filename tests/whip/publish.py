#!/usr/bin/env python3
"""A WHIP publisher outside a browser (tests/whip.rs): GStreamer's webrtcbin sends test video
(H.264 constrained baseline, or VP8) and Opus to a WHIP endpoint, for a number of seconds.

Prints `status=<HTTP status>` once the offer was answered (or refused), then
`location=<session URL>`; with --delete it ends the session with DELETE after the media and
prints `deleted=<status>`. Exits 0 when the publish ran, 3 when it was refused, 4 on a local error.
"""
import argparse
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

# Keyframes only every 100 s, like a browser that sends one only when asked: segments then
# close only if livefront's keyframe requests (RTCP PLI) work.
VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=3000 bitrate={kbps} "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=102 "
    "! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
    "vp8": "vp8enc deadline=1 keyframe-max-dist=3000 target-bitrate={bps} ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("key")
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--codec", choices=sorted(VIDEO), default="h264")
    p.add_argument("--ice-address", default="127.0.0.1")
    p.add_argument("--delete", action="store_true")
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the test video")
    p.add_argument("--kbps", type=int, default=400, help="video bitrate")
    p.add_argument(
        "--raw-stdin",
        type=int,
        metavar="FPS",
        help="video from raw I420 frames of --size on stdin at FPS (bench/llhls.sh pipes "
        "examples/stamp_publisher in) instead of the test pattern",
    )
    args = p.parse_args()

    Gst.init(None)
    frames = int(args.seconds * 30)
    width, height = args.size.split("x")
    video = VIDEO[args.codec].replace("{kbps}", str(args.kbps)).replace("{bps}", str(args.kbps * 1000))
    if args.raw_stdin:
        source = (
            f"fdsrc fd=0 ! rawvideoparse format=i420 width={width} height={height} "
            f"framerate={args.raw_stdin}/1"
        )
    else:
        source = (
            f"videotestsrc is-live=true num-buffers={frames} pattern=ball "
            f"! video/x-raw,width={width},height={height},framerate=30/1"
        )
    pipeline = Gst.parse_launch(
        "webrtcbin name=w bundle-policy=max-bundle "
        f"{source} ! videoconvert ! {video} ! w. "
        "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 "
        "! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 "
        "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
    )
    webrtc = pipeline.get_by_name("w")
    # Kept referenced for the whole run: with PyGObject and GStreamer 1.22, dropping the
    # wrapper of webrtcbin's ICE agent frees the agent under webrtcbin (a crash at negotiation).
    agent = webrtc.get_property("ice-agent")
    agent.emit("add-local-ip-address", args.ice_address)
    loop = GLib.MainLoop()
    state = {"location": None, "code": 0}

    def fail(message, code=4):
        print(message, file=sys.stderr, flush=True)
        state["code"] = code
        loop.quit()

    def post_offer():
        offer = webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            args.url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {args.key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                print(f"status={response.status}", flush=True)
                answer = response.read().decode()
                location = urllib.parse.urljoin(args.url, response.headers["Location"])
        except urllib.error.HTTPError as e:
            print(f"status={e.code}", flush=True)
            print(e.read().decode(errors="replace"), file=sys.stderr, flush=True)
            GLib.idle_add(lambda: fail("refused", 3))
            return
        except Exception as e:  # connection refused, timeout
            message = f"POST failed: {e}"
            GLib.idle_add(lambda: fail(message))
            return
        state["location"] = location
        print(f"location={location}", flush=True)
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        GLib.idle_add(lambda: webrtc.emit("set-remote-description", description, None))

    def on_gathering(element, _pspec):
        if element.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            threading.Thread(target=post_offer, daemon=True).start()

    def on_offer(promise, _):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        webrtc.emit("set-local-description", offer, None)

    def on_negotiation_needed(element):
        for i in range(2):
            t = element.emit("get-transceiver", i)
            if t is not None:
                t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    webrtc.connect("notify::ice-gathering-state", on_gathering)
    webrtc.connect("on-negotiation-needed", on_negotiation_needed)

    def on_message(_bus, message):
        if message.type == Gst.MessageType.EOS:
            loop.quit()
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            fail(f"pipeline error: {err.message} ({debug})")

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    # The video source ends after --seconds; audio is stopped with it.
    GLib.timeout_add(int(args.seconds * 1000) + 500, lambda: loop.quit() or False)
    GLib.timeout_add(int(args.seconds * 1000) + 20000, lambda: fail("timed out") or False)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    if state["code"] == 0 and args.delete and state["location"]:
        request = urllib.request.Request(
            state["location"], method="DELETE", headers={"Authorization": f"Bearer {args.key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                print(f"deleted={response.status}", flush=True)
        except urllib.error.HTTPError as e:
            print(f"deleted={e.code}", flush=True)
    pipeline.set_state(Gst.State.NULL)
    sys.exit(state["code"])


if __name__ == "__main__":
    main()
