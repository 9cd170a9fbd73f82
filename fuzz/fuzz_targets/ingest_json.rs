//! Arbitrary bytes through every JSON body parser of the HTTP API (ingest and admin): a
//! typed value or a 400 `InvalidRequest` naming the problem, never a panic, never another
//! error code. The first byte picks the parser, so one corpus covers them all.
#![no_main]

use bytes::Bytes;
use c123_live::http::error::ErrorCode;
use c123_live::http::routes::{
    parse_config_body, parse_create_body, parse_oncourse_body, parse_results_body,
    parse_status_body, parse_storage_body, parse_xml_body,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    let err = match which % 7 {
        0 => parse_results_body(body).err(),
        1 => parse_oncourse_body(body).err(),
        2 => parse_create_body(body).err(),
        3 => parse_status_body(body).err(),
        4 => parse_config_body(body).err(),
        5 => parse_storage_body(body).err(),
        _ => match parse_xml_body(Bytes::copy_from_slice(body), false) {
            // The export inside goes on to the export parser, as the route does.
            Ok(xml) => {
                let _ = c123_live::xml::parse_export(&xml);
                None
            }
            Err(e) => Some(e),
        },
    };
    if let Some(e) = err {
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{}", e.message);
        assert!(!e.message.is_empty());
    }
});
