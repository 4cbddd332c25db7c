//! Ownership records: who holds which rights in what part of the catalogue, where and when
//! (WORKFLOW.md §4). Validation (catalog references, territory codes, share conflicts) lives in
//! [`crate::rights`]; the catalog stores, lists and removes records, and audits each change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Catalog;
use super::audit::{AuditAction, AuditRecord, TargetKind};
use super::date::Date;
use crate::units::Seconds;
use crate::{Error, Result};

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
                 clap::ValueEnum)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] #[value(name = $s)] $var),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The name used in CSV files and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let t = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
                $name::ALL.iter().copied().find(|v| v.as_str() == t).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("{s:?} is not one of {}", names.join(", "))
                })
            }
        }
    };
}

str_enum! {
    /// What kind of work a record is about.
    WorkKind {
        /// A recording (master); identified by ISRC.
        SoundRecording = "sound_recording",
        /// A musical composition; identified by ISWC.
        Composition = "composition",
        /// The audiovisual work (the episode); identified by ISAN/EIDR.
        Audiovisual = "audiovisual",
        /// A voice actor's performance.
        VoicePerformance = "voice_performance",
    }
}

str_enum! {
    /// Which right a record grants (Content ID / CWR split).
    RightsType {
        /// Master recording rights.
        Master = "master",
        /// Public performance rights.
        Performance = "performance",
        /// Mechanical reproduction rights.
        Mechanical = "mechanical",
        /// Synchronisation rights.
        Sync = "sync",
        /// Everything / not split.
        General = "general",
    }
}

str_enum! {
    /// Whether `territories` lists where the record applies or where it does not.
    TerritoryMode {
        /// Applies in the listed territories (`WW`: everywhere).
        Include = "include",
        /// Applies everywhere except the listed territories.
        Exclude = "exclude",
    }
}

str_enum! {
    /// What the rights holder wants done with a matching upload.
    Policy {
        /// Track viewership only.
        Track = "track",
        /// Monetise the upload.
        Monetize = "monetize",
        /// Block it.
        Block = "block",
        /// Send a takedown notice.
        Takedown = "takedown",
    }
}

/// One ownership record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    /// Stable internal id (`r000001`, or as given in the import file).
    pub rights_id: String,
    /// Rights holder's name.
    pub rights_holder: String,
    /// Holder's IPI / ISNI / society id.
    #[serde(default)]
    pub holder_id: Option<String>,
    /// Administrator or publisher acting for the holder.
    #[serde(default)]
    pub administrator: Option<String>,
    /// Title of the work.
    pub work_title: String,
    /// Kind of work.
    pub work_kind: WorkKind,
    /// ISRC (recordings), normalised `CCXXXYYNNNNN`.
    #[serde(default)]
    pub isrc: Option<String>,
    /// ISWC (compositions), normalised `T-DDD.DDD.DDD-C`.
    #[serde(default)]
    pub iswc: Option<String>,
    /// Other identifiers (ISAN, EIDR, UPC/ICPN, internal catalogue ids), e.g. `upc:4988...`.
    #[serde(default)]
    pub other_ids: Vec<String>,
    /// Scope: series name.
    pub series: String,
    /// Scope: one episode of the series (none: the whole series).
    #[serde(default)]
    pub episode: Option<String>,
    /// Scope: one piece of the episode.
    #[serde(default)]
    pub piece: Option<String>,
    /// Scope: start of a time range inside the episode (OP/ED, insert song, BGM cue).
    #[serde(default)]
    pub start: Option<Seconds>,
    /// Scope: end of that range.
    #[serde(default)]
    pub end: Option<Seconds>,
    /// Which right.
    pub rights_type: RightsType,
    /// Share of that right, percent (0 < share <= 100).
    pub share_pct: f64,
    /// ISO 3166-1 alpha-2 codes, sorted, or `["WW"]` (worldwide).
    pub territories: Vec<String>,
    /// Include or exclude the listed territories.
    pub territory_mode: TerritoryMode,
    /// First day the record applies (inclusive).
    #[serde(default)]
    pub valid_from: Option<Date>,
    /// Last day the record applies (inclusive).
    #[serde(default)]
    pub valid_to: Option<Date>,
    /// Licence type (exclusive, non-exclusive, sync licence, master use, dubbing...).
    #[serde(default)]
    pub licence_type: Option<String>,
    /// Policy for matching uploads.
    pub policy: Policy,
    /// Contact for claims.
    #[serde(default)]
    pub contact: Option<String>,
    /// Contract or document reference.
    #[serde(default)]
    pub source_document: Option<String>,
    /// Who created it.
    #[serde(default)]
    pub created_by: String,
    /// When it was created (Unix ms, UTC).
    #[serde(default)]
    pub created_ms: u64,
    /// Who last changed it.
    #[serde(default)]
    pub updated_by: String,
    /// When it was last changed (Unix ms, UTC).
    #[serde(default)]
    pub updated_ms: u64,
}

impl OwnershipRecord {
    /// Whether the record applies on `date` (no bounds: always).
    pub fn valid_on(&self, date: Date) -> bool {
        self.valid_from.is_none_or(|f| f <= date) && self.valid_to.is_none_or(|t| date <= t)
    }

    /// Whether the record applies in territory `code` (an ISO alpha-2 code).
    pub fn applies_in(&self, code: &str) -> bool {
        let listed = self.territories.iter().any(|t| t == "WW" || t == code);
        match self.territory_mode {
            TerritoryMode::Include => listed,
            TerritoryMode::Exclude => !listed,
        }
    }
}

/// What [`Catalog::put_rights`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RightsStored {
    /// The stored records, in input order, with their ids.
    pub records: Vec<OwnershipRecord>,
    /// How many were new.
    pub created: usize,
    /// How many replaced a record with the same id.
    pub replaced: usize,
}

impl Catalog {
    /// Store ownership records in one transaction: all or nothing. A record with an empty
    /// `rights_id` gets the next free `r000001`-style id; one with the id of a stored record
    /// replaces it (keeping its `created_*`). Each create or replace is audited with `note`.
    ///
    /// `check(all, new)` runs inside the transaction with every record as it would be after the
    /// change (`all`, ids assigned) and the new records in input order (`new`); an error from
    /// it aborts the whole change. [`crate::rights`] uses it for the share-conflict check.
    pub fn put_rights(
        &self,
        records: &[OwnershipRecord],
        who: &str,
        note: &str,
        now_ms: u64,
        check: impl Fn(&[OwnershipRecord], &[OwnershipRecord]) -> Result<()>,
    ) -> Result<RightsStored> {
        self.write(|w, d| {
            let mut all: std::collections::BTreeMap<String, OwnershipRecord> =
                super::collect(d.rights.iter(w)?)?
                    .into_iter()
                    .map(|r: OwnershipRecord| (r.rights_id.clone(), r))
                    .collect();
            let mut out = RightsStored::default();
            let mut next = d.meta.get(w, "rights_seq")?.unwrap_or(0);
            // Ids the batch names itself are taken too: a new id given to an earlier row must
            // not be replaced by a later row that names it.
            let named: std::collections::BTreeSet<&str> =
                records.iter().map(|r| r.rights_id.as_str()).filter(|id| !id.is_empty()).collect();
            for rec in records {
                let mut rec = rec.clone();
                if rec.rights_id.is_empty() {
                    loop {
                        next += 1;
                        let id = format!("r{next:06}");
                        if !all.contains_key(&id) && !named.contains(id.as_str()) {
                            rec.rights_id = id;
                            break;
                        }
                    }
                }
                rec.updated_by = who.into();
                rec.updated_ms = now_ms;
                let action = match all.get(&rec.rights_id) {
                    Some(old) => {
                        rec.created_by = old.created_by.clone();
                        rec.created_ms = old.created_ms;
                        out.replaced += 1;
                        AuditAction::Replace
                    }
                    None => {
                        rec.created_by = who.into();
                        rec.created_ms = now_ms;
                        out.created += 1;
                        AuditAction::Create
                    }
                };
                let audit = AuditRecord {
                    action,
                    note: Some(note.into()),
                    ..AuditRecord::new(who, now_ms, TargetKind::Rights, &rec.rights_id)
                };
                Self::append_audit(w, d, audit)?;
                all.insert(rec.rights_id.clone(), rec.clone());
                out.records.push(rec);
            }
            let every: Vec<OwnershipRecord> = all.into_values().collect();
            check(&every, &out.records)?;
            for rec in &out.records {
                d.rights.put(w, &rec.rights_id, rec)?;
            }
            d.meta.put(w, "rights_seq", &next)?;
            Ok(out)
        })
    }

    /// Every ownership record, by id.
    pub fn rights(&self) -> Result<Vec<OwnershipRecord>> {
        self.read(|r, d| super::collect(d.rights.iter(r)?))
    }

    /// One ownership record by id.
    pub fn rights_record(&self, id: &str) -> Result<OwnershipRecord> {
        self.read(|r, d| {
            d.rights
                .get(r, id)?
                .ok_or_else(|| Error::NotFound { kind: "rights record", id: id.into() })
        })
    }

    /// Delete an ownership record (audited).
    pub fn remove_rights(&self, id: &str, who: &str, now_ms: u64) -> Result<OwnershipRecord> {
        self.write(|w, d| {
            let rec = d
                .rights
                .get(w, id)?
                .ok_or_else(|| Error::NotFound { kind: "rights record", id: id.into() })?;
            d.rights.delete(w, id)?;
            let audit = AuditRecord {
                action: AuditAction::Delete,
                note: Some(format!("{} / {}", rec.rights_holder, rec.work_title)),
                ..AuditRecord::new(who, now_ms, TargetKind::Rights, id)
            };
            Self::append_audit(w, d, audit)?;
            Ok(rec)
        })
    }
}
