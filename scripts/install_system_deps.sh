#!/usr/bin/env bash
# Install the system libraries snl_video uses through Python bindings, where this machine
# allows it (Debian/Ubuntu, as root or with password-less sudo):
#  * libarchive (for `snl-video download`: the UCF-101 / HMDB-51 RAR archives are extracted
#    with the libarchive-c package, which loads the system libarchive);
#  * the FFmpeg shared libraries that the optional torchcodec decoding backend needs.
# It never fails the setup: without FFmpeg torchcodec does not import and
# snl_video.data.available_backends() simply leaves it out (PyAV and decord bundle their
# own FFmpeg); without libarchive `snl-video download` says which package to install.
set -u

if ! ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13 '; then
    if command -v apt-get >/dev/null 2>&1; then
        A_SUDO=""
        [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && A_SUDO="sudo -n"
        if { [ "$(id -u)" = "0" ] || [ -n "$A_SUDO" ]; } && \
           { $A_SUDO apt-get install -y -q --no-install-recommends libarchive13 >/dev/null 2>&1 || \
             { $A_SUDO apt-get update -q >/dev/null 2>&1 && \
               $A_SUDO apt-get install -y -q --no-install-recommends libarchive13 >/dev/null 2>&1; }; }; then
            echo "system-deps: installed libarchive13"
        else
            echo "system-deps: could not install libarchive13 (needed by 'snl-video download' to extract RARs)"
        fi
    else
        echo "system-deps: no apt-get here; 'snl-video download' needs libarchive (e.g. brew/conda install libarchive)"
    fi
else
    echo "system-deps: libarchive already present"
fi

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
