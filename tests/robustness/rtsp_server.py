"""A real RTSP camera for the fault tests: GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0).

Run with the *system* Python (``/usr/bin/python3``, which has ``gi``): ``python3 rtsp_server.py PORT USER PASS``.
Serves ``rtsp://USER:PASS@127.0.0.1:PORT/cam``: a moving test pattern as MJPEG over RTP, 160x120 at 15 FPS,
with basic authentication. Prints ``ready`` once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# RFC 2435 JPEG over RTP carries 4:2:0 / 4:2:2 only: other layouts make rtpjpegpay drop every frame with
# "Invalid component" (a known GStreamer limitation), hence the explicit I420.
PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=15/1 "
            "! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )")


def main(argv):
    port, user, password = argv[1], argv[2], argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_role_from_structure(Gst.Structure.new_from_string("user, media.factory.access=true, "
                                                                "media.factory.construct=true"))
    factory.set_permissions(perms)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("error: cannot listen", flush=True)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
