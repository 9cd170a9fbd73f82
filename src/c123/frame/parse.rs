//! The SAX parser: quick-xml events → [`Message`]s, one element scope at a time.

use std::borrow::Cow;

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::attrs::{read_schedule_race, Attrs};
use super::limits::{longer_than, shorten, MAX_DEPTH, MAX_ID_CHARS, MAX_LIST_ENTRIES};
use super::message::{
    FrameError, Irm, Message, OnCourse, OnCourseRider, RaceConfig, ResultRow, ResultsTable,
    ScheduleRace, TimeOfDay, Tvs,
};
use super::units::{parse_comma_gates, parse_fixed_width_gates, parse_time_of_day};

/// Parses one frame (without its `|`) into the messages it carries, in document order.
pub fn parse_frame(text: &str) -> Result<Vec<Message>, FrameError> {
    // No text trimming in the reader: it would also eat the spaces next to an entity
    // reference (`a &amp; b`). Whitespace between elements of pretty-printed frames is
    // ignored by `Parser::text` instead.
    let mut reader = Reader::from_str(text);

    let mut parser = Parser::default();
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| FrameError::Xml {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        match event {
            Event::Start(e) => parser.open(&e, false, position)?,
            Event::Empty(e) => parser.open(&e, true, position)?,
            Event::End(_) => parser.close()?,
            Event::Text(t) => parser.text(&t.xml10_content(), position)?,
            Event::CData(t) => parser.text(&t.xml10_content(), position)?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => Cow::Owned(c.to_string()),
                        _ => return Err(xml_error(position, "invalid character reference")),
                    }
                } else {
                    match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(xml_error(position, "unknown entity reference")),
                    }
                };
                parser.text(&resolved, position)?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => return parser.finish(),
        }
    }
}

fn xml_error(position: u64, message: &str) -> FrameError {
    FrameError::Xml {
        position,
        message: message.to_owned(),
    }
}

/// Where an element sits, which decides how its attributes and children are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Root,
    OnCourse,
    Results,
    Row,
    Schedule,
    Race,
    RaceStartTime,
    TimeOfDay,
    /// A leaf handled on open (Participant, Result, RaceConfig, TVS) or an ignored element.
    Other,
}

/// The message being built from the current child of the root (one per parse, on the stack).
#[allow(clippy::large_enum_variant)]
enum Building {
    OnCourse(OnCourse, Option<OnCourseRider>),
    Results(ResultsTable, Option<ResultRow>),
    Schedule(Vec<ScheduleRace>),
    TimeOfDay(String),
    Done(Message),
}

#[derive(Default)]
struct Parser {
    stack: Vec<(Scope, String)>,
    root_closed: bool,
    seen_root: bool,
    building: Option<Building>,
    messages: Vec<Message>,
}

impl Parser {
    /// Long (~85 lines) on purpose: one `match` over the element names of the format, each
    /// arm a few lines; the table is easier to check against the spec whole.
    fn open(&mut self, e: &BytesStart<'_>, empty: bool, position: u64) -> Result<(), FrameError> {
        // Over 80 lines: one match over (parent scope, element name), the frame's grammar in
        // one place.
        if self.root_closed {
            return Err(FrameError::TrailingContent);
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(FrameError::TooDeep { limit: MAX_DEPTH });
        }
        let name = e.name().into_inner();
        let parent = self.stack.last().map(|(scope, _)| *scope);
        // Elements whose attributes are not read still get them checked for well-formedness.
        let mut attrs_read = false;
        let scope = match parent {
            None => {
                if name != "Canoe123" {
                    return Err(FrameError::WrongRoot {
                        found: shorten(name),
                    });
                }
                self.seen_root = true;
                Scope::Root
            }
            Some(Scope::Root) => {
                let (scope, read) = self.open_message(e, name, position)?;
                attrs_read = read;
                scope
            }
            Some(Scope::OnCourse) => {
                attrs_read = self.open_in_oncourse(e, name, position)?;
                Scope::Other
            }
            Some(Scope::Results) if name == "Row" => {
                attrs_read = true;
                let attrs = Attrs::read(e, "Row", position)?;
                let row = ResultRow {
                    row_number: attrs.opt_u32("Number")?,
                    ..ResultRow::default()
                };
                if let Some(Building::Results(table, current)) = &mut self.building {
                    if table.rows.len() >= MAX_LIST_ENTRIES {
                        return Err(FrameError::TooMany {
                            element: "Row",
                            limit: MAX_LIST_ENTRIES,
                        });
                    }
                    *current = Some(row);
                }
                Scope::Row
            }
            Some(Scope::Row) => {
                attrs_read = self.open_in_row(e, name, position)?;
                Scope::Other
            }
            Some(Scope::Schedule) if name == "Race" => {
                attrs_read = true;
                let race = read_schedule_race(&Attrs::read(e, "Race", position)?)?;
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if races.len() >= MAX_LIST_ENTRIES {
                        return Err(FrameError::TooMany {
                            element: "Race",
                            limit: MAX_LIST_ENTRIES,
                        });
                    }
                    races.push(race);
                }
                Scope::Race
            }
            Some(Scope::Race) if name == "StartTime" => Scope::RaceStartTime,
            Some(_) => Scope::Other,
        };
        if !attrs_read {
            for attr in e.attributes() {
                attr.map_err(|err| FrameError::Xml {
                    position,
                    message: err.to_string(),
                })?;
            }
        }
        if empty {
            // Self-closing (most Participant/Result elements): close without pushing, which
            // saves allocating the name.
            self.close_scope(scope);
        } else {
            self.stack.push((scope, name.to_owned()));
        }
        Ok(())
    }

    /// A child of `<Canoe123>`: starts a message. Returns its scope and whether its
    /// attributes were read.
    fn open_message(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<(Scope, bool), FrameError> {
        let (scope, building) = match name {
            "OnCourse" => {
                let a = Attrs::read(e, "OnCourse", position)?;
                let msg = OnCourse {
                    total: a.u32_or_zero("Total")?,
                    position: a.u32_or_zero("Position")?,
                    rider: None,
                };
                (Scope::OnCourse, Building::OnCourse(msg, None))
            }
            "Results" => {
                let a = Attrs::read(e, "Results", position)?;
                let table = ResultsTable {
                    race_id: a.string("RaceId")?,
                    class_id: a.string("ClassId")?,
                    is_current: a.flag("Current"),
                    main_title: a.string("MainTitle")?,
                    sub_title: a.string("SubTitle")?,
                    rows: Vec::new(),
                };
                (Scope::Results, Building::Results(table, None))
            }
            "RaceConfig" => {
                let a = Attrs::read(e, "RaceConfig", position)?;
                let captions = a.bounded("GateCaptions")?;
                let config = RaceConfig {
                    nr_splits: a.u32_or_zero("NrSplits")?,
                    nr_gates: a.u32_or_zero("NrGates")?,
                    gate_config: a.string("GateConfig")?,
                    gate_captions: if captions.is_empty() {
                        Vec::new()
                    } else {
                        captions.split(',').map(|c| c.trim().to_owned()).collect()
                    },
                };
                (Scope::Other, Building::Done(Message::RaceConfig(config)))
            }
            "TVS" => {
                let a = Attrs::read(e, "TVS", position)?;
                let tvs = Tvs {
                    odd_bib: a.opt_string("Odd_Bib")?,
                    odd_race_id: a.opt_string("Odd_RaceId")?,
                    even_bib: a.opt_string("Even_Bib")?,
                    even_race_id: a.opt_string("Even_RaceId")?,
                };
                (Scope::Other, Building::Done(Message::Tvs(tvs)))
            }
            "Schedule" => (Scope::Schedule, Building::Schedule(Vec::new())),
            "TimeOfDay" => (Scope::TimeOfDay, Building::TimeOfDay(String::new())),
            other => (
                Scope::Other,
                Building::Done(Message::Unknown(shorten(other))),
            ),
        };
        let attrs_read = matches!(name, "OnCourse" | "Results" | "RaceConfig" | "TVS");
        self.building = Some(building);
        Ok((scope, attrs_read))
    }

    /// A child of `<OnCourse>`. Returns whether its attributes were read.
    fn open_in_oncourse(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<bool, FrameError> {
        let Some(Building::OnCourse(_, rider)) = &mut self.building else {
            return Ok(false);
        };
        match name {
            "Participant" => {
                let a = Attrs::read(e, "Participant", position)?;
                let r = rider.get_or_insert_with(OnCourseRider::default);
                r.bib = a.bib()?;
                r.participant_id = a.opt_string("Id")?;
                r.name = a.string("Name")?;
                r.club = a.string("Club")?;
                r.nat = a.string("Nat")?;
                r.race_name = a.string("Race")?;
                r.race_id = a.string("RaceId")?;
                r.start_order = a.opt_u32("StartOrder")?;
                r.warning = a.opt_string("Warning")?;
            }
            "Result" => {
                let a = Attrs::read(e, "Result", position)?;
                let r = rider.get_or_insert_with(OnCourseRider::default);
                match a.raw("Type") {
                    "C" => {
                        r.gates = a.map("Gates", parse_comma_gates)?;
                        r.completed = a.flag("Completed");
                        r.dt_start_ms = a.time_of_day("dtStart")?;
                        r.dt_split1_ms = a.time_of_day("dtSplit1")?;
                        r.dt_split2_ms = a.time_of_day("dtSplit2")?;
                        r.dt_finish_ms = a.time_of_day("dtFinish")?;
                    }
                    "T" => {
                        r.pen_s = a.penalty_s("Pen")?;
                        let time = a.seconds("Time")?;
                        r.time_ms = time.map(|t| t.ms);
                        r.time_is_running = time.is_some_and(|t| t.whole_seconds);
                        let total = a.ms("Total")?;
                        // Not started: Time="" with the placeholder Total="0.00".
                        r.total_ms = if time.is_none() && total == Some(0) {
                            None
                        } else {
                            total
                        };
                        r.ttb_diff_ms = a.ms("TTBDiff")?;
                        r.ttb_name = a.string("TTBName")?;
                        r.rank = a.rank("Rank")?;
                    }
                    _ => {}
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A child of `<Row>`. Returns whether its attributes were read.
    fn open_in_row(
        &mut self,
        e: &BytesStart<'_>,
        name: &str,
        position: u64,
    ) -> Result<bool, FrameError> {
        let Some(Building::Results(_, Some(row))) = &mut self.building else {
            return Ok(false);
        };
        match name {
            "Participant" => {
                let a = Attrs::read(e, "Participant", position)?;
                row.bib = a.bib()?;
                row.participant_id = a.opt_string("Id")?;
                row.name = a.string("Name")?;
                row.club = a.string("Club")?;
                row.nat = a.string("Nat")?;
                row.given_name = a.string("GivenName")?;
                row.family_name = a.string("FamilyName")?;
                row.start_order = a.opt_u32("StartOrder")?;
                row.start_time_ms = a.time_of_day("StartTime")?;
            }
            "Result" => {
                let a = Attrs::read(e, "Result", position)?;
                // Only Type="T" is known for Results rows; another type is ignored.
                if a.raw("Type") != "T" {
                    return Ok(true);
                }
                row.heat_nr = a.opt_u32("HeatNr")?;
                row.qualification = a.opt_string("Q")?;
                // The one status rule of every input (`crate::result_status`).
                row.irm = crate::result_status::normalize(a.raw("IRM"))
                    .map_err(|e| {
                        a.invalid(
                            "IRM",
                            match e {
                                crate::result_status::StatusError::TooLong(_) => {
                                    "longer than result_status::MAX_STATUS_BYTES"
                                }
                                crate::result_status::StatusError::ControlCharacter => {
                                    "contains a control character"
                                }
                            },
                        )
                    })?
                    .map(|irm| match irm.as_str() {
                        "DNS" => Irm::Dns,
                        "DNF" => Irm::Dnf,
                        "DSQ" => Irm::Dsq,
                        _ => Irm::Other(irm),
                    });
                row.under_investigation = a.raw("PP").contains('*');
                row.pen_s = a.penalty_s("Pen")?;
                row.gates = a.map("Gates", parse_fixed_width_gates)?;
                row.time_ms = a.ms("Time")?;
                row.total_ms = a.ms("Total")?;
                row.rank = a.rank("Rank")?;
                row.rank_order = a.rank("RankOrder")?;
                row.behind_ms = a.ms("Behind")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn text(&mut self, text: &str, position: u64) -> Result<(), FrameError> {
        match self.stack.last() {
            None => {
                if text.trim().is_empty() {
                    Ok(())
                } else if self.root_closed {
                    Err(FrameError::TrailingContent)
                } else {
                    Err(xml_error(position, "text outside the root element"))
                }
            }
            Some((Scope::TimeOfDay, _)) => {
                if let Some(Building::TimeOfDay(buf)) = &mut self.building {
                    buf.push_str(text);
                    if longer_than(buf, MAX_ID_CHARS) {
                        return Err(FrameError::TooLong {
                            element: "TimeOfDay",
                            attribute: "text",
                            limit: MAX_ID_CHARS,
                        });
                    }
                }
                Ok(())
            }
            Some((Scope::RaceStartTime, _)) => {
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if let Some(race) = races.last_mut() {
                        let start = race.start_time.get_or_insert_with(String::new);
                        start.push_str(text);
                        if longer_than(start, MAX_ID_CHARS) {
                            return Err(FrameError::TooLong {
                                element: "StartTime",
                                attribute: "text",
                                limit: MAX_ID_CHARS,
                            });
                        }
                    }
                }
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    fn close(&mut self) -> Result<(), FrameError> {
        // quick-xml checks that end names match, so the stack cannot underflow on valid
        // input; treat an underflow as malformed anyway instead of panicking.
        let Some((scope, _)) = self.stack.pop() else {
            return Err(xml_error(0, "unmatched end tag"));
        };
        self.close_scope(scope);
        Ok(())
    }

    /// Completes an element whose entry is no longer on the stack.
    fn close_scope(&mut self, scope: Scope) {
        match scope {
            Scope::Root => self.root_closed = true,
            Scope::Row => {
                if let Some(Building::Results(table, row)) = &mut self.building {
                    if let Some(row) = row.take() {
                        table.rows.push(row);
                    }
                }
            }
            Scope::RaceStartTime => {
                if let Some(Building::Schedule(races)) = &mut self.building {
                    if let Some(race) = races.last_mut() {
                        // Whitespace-only / empty <StartTime> reads as absent.
                        if race
                            .start_time
                            .as_deref()
                            .is_some_and(|s| s.trim().is_empty())
                        {
                            race.start_time = None;
                        }
                    }
                }
            }
            _ => {}
        }
        // Closing a direct child of the root completes its message.
        if self.stack.len() == 1 {
            if let Some(building) = self.building.take() {
                self.messages.push(match building {
                    Building::OnCourse(mut msg, rider) => {
                        // A rider needs a <Participant> (the bib); stray results alone are dropped.
                        msg.rider = rider.filter(|r| !r.bib.is_empty());
                        Message::OnCourse(msg)
                    }
                    Building::Results(table, _) => Message::Results(table),
                    Building::Schedule(races) => Message::Schedule(races),
                    Building::TimeOfDay(text) => {
                        let text = text.trim().to_owned();
                        let ms_since_midnight = parse_time_of_day(&text).ok().flatten();
                        Message::TimeOfDay(TimeOfDay {
                            text,
                            ms_since_midnight,
                        })
                    }
                    Building::Done(msg) => msg,
                });
            }
        }
    }

    fn finish(self) -> Result<Vec<Message>, FrameError> {
        if let Some((_, open)) = self.stack.last() {
            return Err(FrameError::Truncated {
                open: shorten(open),
            });
        }
        if !self.seen_root {
            return Err(FrameError::NoRoot);
        }
        Ok(self.messages)
    }
}
