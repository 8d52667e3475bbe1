//! The cpal (ALSA) backend on a machine with NO sound card (this CI machine has no /dev/snd):
//! opening a device gives the clear "no audio device" error naming it and the available ones;
//! alsa-lib's built-in `null` PCM opens and delivers frames through the real capture path
//! (unpaced: no timing assertions).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use barnabee_voice::audio::cpal::{CpalSink, CpalSource, list_devices};
use barnabee_voice::audio::{AudioError, AudioSink, AudioSource, FRAME_SAMPLES};

#[test]
fn no_sound_card_missing_device_error_names_device_and_available_ones() {
    let Err(e) = CpalSource::open("barnabee-no-such-device") else {
        panic!("a device that cannot exist opened");
    };
    let msg = e.to_string();
    assert!(matches!(e, AudioError::NoDevice { .. }), "{msg}");
    assert!(msg.starts_with("no audio device"), "{msg}");
    assert!(msg.contains("\"barnabee-no-such-device\""), "{msg}");
    assert!(msg.contains("available input devices:"), "{msg}");
    // alsa-lib always defines `null`; it must be listed
    assert!(list_devices(true).iter().any(|d| d == "null"), "{msg}");
    assert!(msg.contains("null"), "{msg}");
    let Err(e) = CpalSink::open("barnabee-no-such-device") else {
        panic!("a playback device that cannot exist opened");
    };
    assert!(e.to_string().contains("output device"), "{e}");
}

#[test]
fn no_sound_card_default_device_fails_clearly() {
    if std::path::Path::new("/dev/snd").exists() {
        // A machine with a sound card checks the other side: `default` opens.
        eprintln!("/dev/snd exists: checking that `default` opens instead of the no-device error");
        if let Err(e) = CpalSource::open("default") {
            panic!("`default` failed to open on a machine with a sound card: {e}");
        }
        return;
    }
    let Err(e) = CpalSource::open("default") else {
        panic!("`default` opened without a sound card");
    };
    let msg = e.to_string();
    assert!(msg.starts_with("no audio device"), "{msg}");
    assert!(msg.contains("\"default\""), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn null_pcm_delivers_16k_mono_frames_through_the_cpal_path() {
    let mut src = CpalSource::open("null").unwrap();
    let f = tokio::time::timeout(Duration::from_secs(10), src.read_frame())
        .await
        .expect("no frame from the null PCM within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(f.len(), FRAME_SAMPLES);
    assert!(f.iter().all(|s| *s == 0), "the null PCM captures silence");
    src.discard_pending();
    let mut sink = CpalSink::open("null").unwrap();
    sink.start(22_050).unwrap();
    sink.write(&[0i16; 2205]).unwrap();
    sink.stop();
    sink.finish().unwrap();
}
