//! Property tests on the frame parser (the fuzz target #15 asks for, as proptest so it runs in
//! the normal test command): whatever bytes a peer sends, `read_event` answers with an event, a
//! clean end or a named error, never a panic or an allocation beyond the limits; every event we
//! write reads back identical; a frame cut anywhere is an error, never a half event.
#![allow(clippy::unwrap_used)]

use barnabee_wyoming::{Event, FrameError, Limits, read_event};
use proptest::prelude::*;
use serde_json::{Map, Value};

const L: Limits = Limits {
    header: 4096,
    data: 4096,
    payload: 65_536,
};

fn parse(bytes: &[u8]) -> Result<Option<Event>, FrameError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = tokio::io::BufReader::new(bytes);
        read_event(&mut r, L).await
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        "[a-z][a-z-]{0,20}",
        proptest::collection::btree_map("[a-z_]{1,12}", value(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(kind, data, payload)| Event {
            kind,
            data: data.into_iter().collect::<Map<String, Value>>(),
            payload,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(Some(ev)) = parse(&bytes) {
            prop_assert!(ev.payload.len() <= L.payload);
        }
    }

    #[test]
    fn arbitrary_header_lines_never_panic(line in "\\{\"type\":\"[a-z-]{0,8}\"(,\"(data|data_length|payload_length)\":(-?[0-9]{1,12}|\"x\"|null|\\{\\}|\\[\\]))*\\}\n", tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = line.into_bytes();
        bytes.extend(tail);
        let _ = parse(&bytes);
    }

    #[test]
    fn written_events_read_back_identical(ev in event()) {
        let back = parse(&ev.encode()).unwrap().unwrap();
        prop_assert_eq!(back, ev);
    }

    #[test]
    fn a_cut_frame_is_an_error_never_half_an_event(ev in event(), cut in any::<prop::sample::Index>()) {
        let bytes = ev.encode();
        let at = cut.index(bytes.len());
        match parse(&bytes[..at]) {
            Ok(None) => prop_assert_eq!(at, 0),
            Ok(Some(e)) => prop_assert!(false, "a cut frame parsed as {e:?}"),
            Err(_) => {}
        }
    }
}
