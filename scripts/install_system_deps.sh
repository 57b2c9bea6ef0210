#!/usr/bin/env bash
# Install the FFmpeg shared libraries that the optional torchcodec decoding backend
# needs, where this machine allows it (Debian/Ubuntu, as root or with password-less
# sudo). It never fails the setup: without the libraries torchcodec does not import and
# snl_video.data.available_backends() simply leaves it out (PyAV and decord bundle their
# own FFmpeg).
set -u

if ldconfig -p 2>/dev/null | grep -qE 'libavdevice\.so\.(58|59|60|61) '; then
    echo "system-deps: FFmpeg shared libraries already present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get here; to enable the torchcodec backend install the FFmpeg 4-7 shared libraries yourself"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "system-deps: not root and no password-less sudo; torchcodec backend stays unavailable"
        echo "             (run: sudo apt-get install ffmpeg)"
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Debian 12 names first (small: the libraries only); otherwise the distribution's ffmpeg.
DEBIAN12="libavcodec59 libavformat59 libavdevice59 libavfilter8 libavutil57 libswscale6 libswresample4"
for attempt in "$DEBIAN12" "ffmpeg"; do
    if $SUDO apt-get install -y -q --no-install-recommends $attempt >/dev/null 2>&1; then
        echo "system-deps: installed $attempt"
        exit 0
    fi
    if [ -z "${UPDATED:-}" ]; then
        $SUDO apt-get update -q >/dev/null 2>&1 && UPDATED=1
        if $SUDO apt-get install -y -q --no-install-recommends $attempt >/dev/null 2>&1; then
            echo "system-deps: installed $attempt"
            exit 0
        fi
    fi
done
echo "system-deps: could not install the FFmpeg libraries; torchcodec backend stays unavailable"
exit 0
