//! The admin API's request bodies, decoded and validated. Pure: bytes in, a typed value or a
//! 400 naming the field out (fuzzed through the `parse_*` functions).

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;

use super::body::{decode, explicit};
use crate::http::error::ApiError;
use crate::model::{EventConfig, EventImage, EventMeta, EventStatus};
use crate::time::parse_date_days;

/// Largest event image (decoded).
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEventBody {
    event_id: String,
    main_title: String,
    #[serde(default)]
    sub_title: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    facility: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    discipline: Option<String>,
    #[serde(default)]
    image_data: Option<String>,
}

pub use crate::model::valid_event_id;

fn text_field(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        Some(s) if s.chars().count() > 500 => Err(ApiError::invalid(format!(
            "{name}: longer than 500 characters"
        ))),
        other => Ok(other),
    }
}

fn date_field(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match text_field(name, v)? {
        None => Ok(None),
        Some(s) => {
            if parse_date_days(&s).is_none() {
                return Err(ApiError::invalid(format!(
                    "{name}: '{s}' is not a date (YYYY-MM-DD)"
                )));
            }
            Ok(Some(s[..10].to_owned()))
        }
    }
}

/// Decodes `imageData` (data URI or raw base64) and checks that it is really an image.
pub fn decode_image(data: &str) -> Result<EventImage, ApiError> {
    let b64 = match data.strip_prefix("data:") {
        Some(rest) => {
            let (meta, payload) = rest
                .split_once(',')
                .ok_or_else(|| ApiError::invalid("imageData: data URI without ','"))?;
            if !meta.starts_with("image/") || !meta.ends_with(";base64") {
                return Err(ApiError::invalid(
                    "imageData: expected data:image/<type>;base64,<data>",
                ));
            }
            payload
        }
        None => data,
    };
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| ApiError::invalid(format!("imageData: not valid base64 ({e})")))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("imageData: empty image"));
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::invalid(format!(
            "imageData: image is {} bytes, over the limit of {MAX_IMAGE_BYTES}",
            bytes.len()
        )));
    }
    let content_type = sniff_image(&bytes)
        .ok_or_else(|| ApiError::invalid("imageData: not a PNG, JPEG, GIF, WebP or SVG image"))?;
    Ok(EventImage {
        content_type: content_type.to_owned(),
        bytes: Arc::new(bytes),
    })
}

/// The image type from its leading bytes.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        let text = std::str::from_utf8(b).ok()?;
        let t = text.trim_start_matches('\u{feff}').trim_start();
        let head: String = t.chars().take(4096).collect();
        let looks_xml = t.starts_with('<');
        (looks_xml && head.contains("<svg")).then_some("image/svg+xml")
    }
}

/// A validated `POST /api/v1/admin/events` body.
#[derive(Debug)]
pub struct NewEvent {
    pub event_id: String,
    pub meta: EventMeta,
    pub image: Option<EventImage>,
}

/// The body of `POST /api/v1/admin/events`, decoded and validated (ids, dates, image).
/// Pure (fuzzed).
pub fn parse_create_body(body: &[u8]) -> Result<NewEvent, ApiError> {
    validate_create(decode(body)?)
}

/// A decoded `POST /api/v1/admin/events` body, validated.
pub fn validate_create(b: CreateEventBody) -> Result<NewEvent, ApiError> {
    let event_id = b.event_id.trim().to_owned();
    if event_id.is_empty() {
        return Err(ApiError::invalid("Missing required field: eventId"));
    }
    if !valid_event_id(&event_id) {
        return Err(ApiError::invalid(
            "eventId: use 1-100 characters of A-Z, a-z, 0-9, '.', '_' and '-' (not '.' or '..')",
        ));
    }
    let main_title = text_field("mainTitle", Some(b.main_title))?
        .ok_or_else(|| ApiError::invalid("Missing required field: mainTitle"))?;
    let start_date = date_field("startDate", b.start_date)?;
    let end_date = date_field("endDate", b.end_date)?;
    if let (Some(s), Some(e)) = (&start_date, &end_date) {
        if s > e {
            return Err(ApiError::invalid("endDate: before startDate"));
        }
    }
    let image = match b.image_data.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => Some(decode_image(d)?),
        None => None,
    };
    let meta = EventMeta {
        main_title,
        sub_title: text_field("subTitle", b.sub_title)?,
        location: text_field("location", b.location)?,
        facility: text_field("facility", b.facility)?,
        start_date: start_date.clone(),
        end_date: end_date.clone(),
        discipline: text_field("discipline", b.discipline)?,
    };
    Ok(NewEvent {
        event_id,
        meta,
        image,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageBody {
    /// The new database size cap in MB; `null` lifts it. Required.
    #[serde(default, deserialize_with = "explicit")]
    max_db_size_mb: Option<Option<u64>>,
}

impl StorageBody {
    /// The cap in MB; `None`: no cap.
    pub fn max_db_size_mb(&self) -> Option<u64> {
        self.max_db_size_mb.flatten()
    }
}

/// The body of `PUT /api/v1/admin/storage`, validated.
pub fn parse_storage_body(bytes: &[u8]) -> Result<StorageBody, ApiError> {
    validate_storage(decode(bytes)?)
}

/// A decoded `PUT /api/v1/admin/storage` body, validated.
pub fn validate_storage(b: StorageBody) -> Result<StorageBody, ApiError> {
    match b.max_db_size_mb {
        None => return Err(ApiError::invalid("Missing required field: maxDbSizeMb")),
        Some(Some(0)) => return Err(ApiError::invalid("maxDbSizeMb: must be at least 1")),
        _ => {}
    }
    Ok(b)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: String,
}

/// The body of `PATCH /api/v1/admin/events/{id}/status`. Pure (fuzzed).
pub fn parse_status_body(body: &[u8]) -> Result<EventStatus, ApiError> {
    validate_status(decode(body)?)
}

/// A decoded status body, validated.
pub fn validate_status(b: StatusBody) -> Result<EventStatus, ApiError> {
    b.status
        .parse()
        .map_err(|e| ApiError::invalid(format!("status: {e}")))
}

/// The body of `PATCH /api/v1/admin/events/{id}/config`. Pure (fuzzed).
pub fn parse_config_body(body: &[u8]) -> Result<EventConfig, ApiError> {
    validate_config(decode(body)?)
}

/// A decoded config patch, validated.
pub fn validate_config(patch: EventConfig) -> Result<EventConfig, ApiError> {
    if let Some(m) = &patch.display_mode {
        if m != "simple" && m != "detailed" {
            return Err(ApiError::invalid(format!(
                "displayMode: '{m}' is not one of simple, detailed"
            )));
        }
    }
    Ok(patch)
}
