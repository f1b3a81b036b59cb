#!/usr/bin/env python3
"""A stand-in IP camera for tests: GStreamer's RTSP server with Basic auth.

    rtsp_camera.py PORT USER PASSWORD [--no-audio] [--file MEDIA.mp4]

Serves rtsp://USER:PASSWORD@127.0.0.1:PORT/cam: H.264 320x240 at 30 fps, 1 s GOP, no B-frames,
plus AAC 48 kHz stereo unless --no-audio; or, with --file, the H.264 and AAC tracks of an MP4 in
real time, once (bench/rtsp.sh). PORT 0 picks a free port. Prints "PORT <n>" once listening; runs
until killed. Needs python3-gi and gir1.2-gst-rtsp-server-1.0.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=500 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
)
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 "
    "! avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97"
)


def main():
    port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    options = sys.argv[4:]
    audio = "--no-audio" not in options
    if "--file" in options:
        path = options[options.index("--file") + 1]
        launch = (
            f'filesrc location="{path}" ! qtdemux name=d '
            "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
            "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97"
        )
    else:
        launch = VIDEO + (" " + AUDIO if audio else "")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + " )")
    factory.set_shared(True)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(user, "media.factory.access", True)
    permissions.add_permission_for_role(user, "media.factory.construct", True)
    factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/cam", factory)

    if server.attach(None) == 0:
        sys.exit("could not listen on port " + port)
    print("PORT", server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
