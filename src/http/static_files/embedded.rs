//! The files of `web/` the binary carries: the spectator page and the operator console.

/// The page in `web/`, embedded at build time: (URL path, content type, bytes).
pub const EMBEDDED: &[(&str, &str, &[u8])] = &[
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../web/style.css"),
    ),
    (
        "/icon.svg",
        "image/svg+xml",
        include_bytes!("../../../web/icon.svg"),
    ),
    (
        "/i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/i18n.js"),
    ),
    (
        "/state.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/state.js"),
    ),
    (
        "/views.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/views.js"),
    ),
    (
        "/fav.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/fav.js"),
    ),
    (
        "/detail.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/detail.js"),
    ),
    (
        "/operator",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/operator.html"),
    ),
    (
        "/operator.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/operator.js"),
    ),
    (
        "/operator.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../web/operator.css"),
    ),
];

/// The operator console is the daemon's own, whatever front end serves spectators: with
/// `--static-dir` these paths still come from the binary.
pub const OPERATOR_PATHS: &[&str] = &["/operator", "/operator.js", "/operator.css"];
