//! Reads a `DataSet`-style document into rows: root → row elements → column elements (and,
//! for `Classes`, nested rows one level deeper). Text is kept exactly as written.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::{XmlError, CANOE123_NS};

/// One element with its text and child elements.
#[derive(Debug, Default)]
pub(super) struct Row {
    pub name: String,
    pub text: String,
    pub children: Vec<Row>,
}

impl Row {
    /// The text of the first child column with this name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.text.as_str())
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Deepest element level below the root: row (1), column (2), nested row's column (3).
const MAX_DEPTH: usize = 3;

fn malformed(reader: &NsReader<&[u8]>, message: impl ToString) -> XmlError {
    XmlError::Malformed {
        position: reader.error_position(),
        message: message.to_string(),
    }
}

/// Returns the root's child rows, in document order.
///
/// Long (~90 lines) on purpose: one pull-parser loop whose nesting state (root, table, field)
/// lives in its locals; split up, that state would have to travel between the parts.
pub(super) fn read_tables(text: &str) -> Result<Vec<Row>, XmlError> {
    // Over 80 lines: one match over quick-xml's closed `Event` enum; the root, reference and
    // end-of-text checks are helpers.
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut rows: Vec<Row> = Vec::new();
    // Open elements below the root; the root itself is tracked by `root_open`.
    let mut stack: Vec<Row> = Vec::new();
    let mut root_open = false;
    let mut root_seen = false;

    loop {
        let read = reader.read_resolved_event().map_err(|e| e.to_string());
        let (ns, event) = match read {
            Ok(pair) => pair,
            Err(message) => {
                return Err(XmlError::Malformed {
                    position: reader.error_position(),
                    message,
                })
            }
        };
        // Only the root's namespace matters; own it so the reader can be used again.
        let root_ns: Option<Result<Option<String>, String>> = (!root_open).then(|| match ns {
            ResolveResult::Unbound => Ok(None),
            ResolveResult::Bound(n) => Ok(Some(n.into_inner().to_owned())),
            ResolveResult::Unknown(p) => Err(p),
        });
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = e.local_name().into_inner().to_owned();
                if !root_open {
                    if root_seen {
                        return Err(malformed(&reader, "a second root element"));
                    }
                    if local != "Canoe123Data" {
                        return Err(XmlError::WrongRoot { found: local });
                    }
                    check_root_ns(&reader, root_ns)?;
                    root_seen = true;
                    root_open = !is_empty;
                    continue;
                }
                if stack.len() >= MAX_DEPTH {
                    let table = stack.first().map(|r| r.name.clone()).unwrap_or_default();
                    return Err(XmlError::TooDeep { table });
                }
                let row = Row {
                    name: local,
                    ..Row::default()
                };
                if is_empty {
                    close(&mut stack, &mut rows, row);
                } else {
                    stack.push(row);
                }
            }
            Event::End(_) => match stack.pop() {
                Some(row) => close(&mut stack, &mut rows, row),
                None => root_open = false,
            },
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if root_seen && !root_open && !t.xml10_content().trim().is_empty() {
                    return Err(malformed(&reader, "text after the root element"));
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_ref(&reader, &r)?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => {
                // No DTDs: they are how entity-expansion attacks start, and Canoe123 writes none.
                return Err(malformed(&reader, "a DOCTYPE is not allowed in an export"));
            }
            Event::Eof => {
                check_complete(&stack, root_open, root_seen)?;
                return Ok(rows);
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

/// The root's namespace: none, or Canoe123's.
fn check_root_ns(
    reader: &NsReader<&[u8]>,
    root_ns: Option<Result<Option<String>, String>>,
) -> Result<(), XmlError> {
    match root_ns {
        None | Some(Ok(None)) => Ok(()),
        Some(Ok(Some(n))) if n == CANOE123_NS => Ok(()),
        Some(Ok(Some(n))) => Err(XmlError::WrongNamespace { found: n }),
        Some(Err(p)) => Err(malformed(reader, format!("unknown prefix '{p}'"))),
    }
}

/// A character reference or one of the predefined entities; any other entity is refused.
fn resolve_ref(
    reader: &NsReader<&[u8]>,
    r: &quick_xml::events::BytesRef<'_>,
) -> Result<String, XmlError> {
    match r.resolve_char_ref() {
        Ok(Some(ch)) => Ok(ch.to_string()),
        Ok(None) => match resolve_predefined_entity(r) {
            Some(s) => Ok(s.to_owned()),
            None => Err(malformed(reader, format!("unknown entity '&{};'", &**r))),
        },
        Err(e) => Err(malformed(reader, e)),
    }
}

/// At the end of the text: every element closed, and there was a root.
fn check_complete(stack: &[Row], root_open: bool, root_seen: bool) -> Result<(), XmlError> {
    if let Some(open) = stack.last() {
        return Err(XmlError::Truncated {
            open: open.name.clone(),
        });
    }
    if root_open {
        return Err(XmlError::Truncated {
            open: "Canoe123Data".into(),
        });
    }
    if !root_seen {
        return Err(XmlError::Malformed {
            position: 0,
            message: "no root element (is this XML?)".into(),
        });
    }
    Ok(())
}

fn close(stack: &mut [Row], rows: &mut Vec<Row>, row: Row) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(row),
        None => rows.push(row),
    }
}
