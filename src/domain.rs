//! Domain newtypes, parsed at the edge: raw strings stop here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($name:ident) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema(Some(utoipa::openapi::schema::KnownFormat::Uuid), None)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// The OpenAPI schema of a value written as a string: of a known format, or one of `texts`.
fn string_schema(
    format: Option<utoipa::openapi::schema::KnownFormat>,
    texts: Option<&[&str]>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(format.map(utoipa::openapi::schema::SchemaFormat::KnownFormat))
        .enum_values(texts.map(|texts| texts.to_vec()))
        .into()
}

id_type!(DocumentId);
id_type!(BatchId);
id_type!(PatientId);
id_type!(UserId);
id_type!(ReleaseId);
id_type!(ProductionId);
id_type!(AttachmentId);
id_type!(HoldId);

/// A closed set of names, each written one way in the database and the API: the enum, its
/// variants' texts ([`as_str`](Role::as_str)), all of them in order (`ALL`), `Display`, and
/// `FromStr`, whose error names every text. Serde's names are tested to be the same texts.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order error messages list them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{} must be one of: {}",
                        $what,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema(None, Some(&[$($text),+]))
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// A medical record number as the hospital writes it, and the assigning authority that
/// issued it. Leading zeros are significant (`00123` is not `123`); surrounding white space
/// is not, and letters compare uppercase. MRNs are unique per issuer: two facilities'
/// `00123` are two patients. `issuer` is `None` for the archive's default issuer
/// (`patients.default_issuer`), which names everything that names no issuer.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mrn {
    value: String,
    issuer: Option<String>,
}

impl Mrn {
    /// An MRN of the default issuer.
    pub fn parse(raw: &str) -> Result<Mrn, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("mrn must not be empty".into());
        }
        if trimmed.len() > 32 {
            return Err("mrn must be at most 32 characters".into());
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err("mrn may contain only letters, digits and '-'".into());
        }
        Ok(Mrn {
            value: trimmed.to_ascii_uppercase(),
            issuer: None,
        })
    }

    /// The same MRN as issued by `issuer` (a name of `[[patients.issuers]]`, checked by the
    /// configuration; `None`: the default issuer).
    pub fn issued_by(self, issuer: Option<String>) -> Mrn {
        Mrn {
            value: self.value,
            issuer,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The issuer when it is not the default one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

/// An issuer's name (`[[patients.issuers]]`, `patients.default_issuer`): a namespace id
/// as HL7's PID-3.4 carries it.
pub fn parse_issuer(raw: &str) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("issuer must be 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    Ok(value.to_string())
}

/// MRNs are PHI: they never appear in Debug output (and so in logs).
impl fmt::Debug for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mrn(<redacted>)")
    }
}

impl TryFrom<String> for Mrn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Mrn::parse(&value)
    }
}

impl From<Mrn> for String {
    fn from(value: Mrn) -> Self {
        value.value
    }
}

/// A lowercase slug such as `discharge-summary` or `general`: the one parser of document
/// types and categories from every source (upload metadata, cover sheets, QA, corrections,
/// configuration), so `HIV`, ` hiv ` and `hiv` are one value everywhere.
pub fn parse_slug(field: &str, raw: &str) -> Result<String, String> {
    let value = raw.trim().to_ascii_lowercase();
    if value.is_empty() || value.len() > 64 {
        return Err(format!("{field} must be 1 to 64 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "{field} may contain only letters, digits, '-' and '_'"
        ));
    }
    Ok(value)
}

/// A document's sensitivity category (`general`, `hiv`, `substance-use`, ...): a slug made
/// by [`parse_slug`] and nothing else, so the sensitive-category check compares normalised
/// values by construction (a cover code's `CAT=HIV` is the category `hiv`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// Parses a category as a client, a cover sheet or the configuration writes it.
    pub fn parse(raw: &str) -> Result<Category, String> {
        parse_slug("category", raw).map(Category)
    }

    /// The category of documents filed without one.
    pub fn general() -> Category {
        Category("general".to_string())
    }

    /// A category read back from the database. Values are written through [`Category::parse`];
    /// one from before normalisation is folded the same way here (and rewritten, its pages
    /// indexed again, at start: `worker::normalise_stored_labels`).
    pub fn from_stored(raw: String) -> Category {
        match parse_slug("category", &raw) {
            Ok(slug) => Category(slug),
            Err(_) => Category(raw.trim().to_ascii_lowercase()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Category {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Category::parse(&value)
    }
}

impl From<Category> for String {
    fn from(value: Category) -> Self {
        value.0
    }
}

impl utoipa::PartialSchema for Category {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(None, None)
    }
}

impl utoipa::ToSchema for Category {}

impl utoipa::PartialSchema for Mrn {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(None, None)
    }
}

impl utoipa::ToSchema for Mrn {}

impl PartialEq<str> for Category {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
    #[serde(rename_all = "lowercase")]
    pub enum Role ("role") {
        Admin => "admin",
        Records => "records",
        Clinician => "clinician",
        Legal => "legal",
        Auditor => "auditor",
    }
}

text_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum DocumentStatus ("status") {
        Accepted => "accepted",
        Processing => "processing",
        Indexed => "indexed",
        /// Processed, but a person has to look at it first (`qa_reason` says why): listed for
        /// `records`, invisible to everyone else.
        Qa => "qa",
        Failed => "failed",
        /// A tombstone: the document was crypto-shredded.
        Deleted => "deleted",
        /// Filed wrongly and corrected: `superseded_by` is the corrected version. Kept,
        /// readable to `records` only, out of the search index.
        #[serde(rename = "entered-in-error")]
        EnteredInError => "entered-in-error",
    }
}

impl DocumentStatus {
    /// Seen by `records` alone: the QA queue, and versions entered in error.
    pub fn records_only(self) -> bool {
        matches!(self, DocumentStatus::Qa | DocumentStatus::EnteredInError)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ingest,
    Search,
    ReadDocument,
    LookupPatient,
    /// Crypto-shred a document (with a reason); see `legal::shred`.
    DeleteDocument,
    /// KEK status, rotation and retirement.
    ManageKeys,
    /// Care relationships: who treats which patient.
    ManageCare,
    /// Grants of sensitive categories.
    GrantCategory,
    /// Emergency access to a patient off the caller's care list.
    BreakGlass,
    /// The privacy officer's review of break-the-glass accesses.
    ReviewBreakGlass,
    /// Read the audit log (`POST /audit/query`).
    QueryAudit,
    /// Record a disclosure made outside the system.
    RecordDisclosure,
    /// A patient's accounting of disclosures.
    AccountDisclosures,
    /// List and resolve the QA queue.
    ReviewQa,
    /// Re-file a document under another patient, type or date (a new version; the old one
    /// is entered in error).
    CorrectDocument,
    /// Place, list and release legal holds.
    ManageHolds,
    /// Run retention (list what expired; with apply, destroy it).
    RunRetention,
    /// Read destruction certificates.
    ReadCertificates,
    /// Release requests: record them, their supporting documents, exclusions and
    /// redactions; produce and download their productions.
    ManageReleases,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ingest => "ingest",
            Action::Search => "search",
            Action::ReadDocument => "read",
            Action::LookupPatient => "patient-lookup",
            Action::DeleteDocument => "delete",
            Action::ManageKeys => "manage-keys",
            Action::ManageCare => "manage-care",
            Action::GrantCategory => "grant-category",
            Action::BreakGlass => "break-glass",
            Action::ReviewBreakGlass => "review-break-glass",
            Action::QueryAudit => "audit-query",
            Action::RecordDisclosure => "record-disclosure",
            Action::AccountDisclosures => "account-disclosures",
            Action::ReviewQa => "review-qa",
            Action::CorrectDocument => "correct-document",
            Action::ManageHolds => "hold",
            Action::RunRetention => "retention-run",
            Action::ReadCertificates => "destruction-certificates",
            Action::ManageReleases => "release",
        }
    }
}

text_enum! {
    /// How an audited access ended, as the audit log records it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum Outcome ("outcome") {
        /// Done as asked.
        #[default]
        Ok => "ok",
        /// Nothing of that id (or nothing the caller may know of).
        NotFound => "not-found",
        /// The caller's role does not allow the action (403).
        DeniedRole => "denied-role",
        /// The record is outside the caller's scope (404, like an unknown id).
        DeniedScope => "denied-scope",
        /// A rule of the archive refused it (a hold, a retention period, a KEK still in use).
        Refused => "refused",
        /// An upload accepted for processing.
        Accepted => "accepted",
        /// An upload whose bytes the archive already holds.
        Duplicate => "duplicate",
    }
}

text_enum! {
    /// What a release request rests on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum LegalBasis ("legal_basis") {
        Subpoena => "subpoena",
        CourtOrder => "court-order",
        PatientAuthorization => "patient-authorization",
        /// The patient's own request for their records (45 CFR 164.524).
        PatientAccess => "patient-access",
        Other => "other",
    }
}

text_enum! {
    /// Where a page's text came from.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum TextSource ("text_source") {
        /// Recognised by Tesseract.
        Ocr => "ocr",
        /// A PDF's own text layer, as its rendered page shows it.
        TextLayer => "text-layer",
        /// A DICOM instance's own text (its report), not the pixels.
        Dicom => "dicom",
        /// A blank page: no text.
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrn_keeps_leading_zeros_and_folds_case() {
        assert_eq!(Mrn::parse(" 00123 ").unwrap().as_str(), "00123");
        assert_eq!(Mrn::parse("ab-7").unwrap().as_str(), "AB-7");
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse("12 34").is_err());
        assert!(Mrn::parse("1;DROP").is_err());
    }

    #[test]
    fn categories_from_every_source_fold_to_one_slug() {
        assert_eq!(
            Category::parse("HIV").unwrap(),
            Category::parse(" hiv ").unwrap()
        );
        assert_eq!(
            Category::parse("Substance-Use").unwrap().as_str(),
            "substance-use"
        );
        assert!(Category::parse("h i v").is_err());
        assert!(Category::parse("").is_err());
        assert_eq!(Category::from_stored("HIV".into()).as_str(), "hiv");
        let parsed: Category = serde_json::from_str("\"HIV\"").unwrap();
        assert_eq!(parsed.as_str(), "hiv");
    }

    #[test]
    fn mrn_debug_does_not_print_the_value() {
        let mrn = Mrn::parse("00123").unwrap();
        assert!(!format!("{mrn:?}").contains("123"));
    }

    /// The text of every value is the name serde gives it in the API, and parses back.
    #[test]
    fn text_enums_are_written_alike_everywhere() {
        fn check<T>(all: &[T])
        where
            T: Copy + fmt::Display + FromStr + Serialize + PartialEq + fmt::Debug,
        {
            for value in all {
                let text = value.to_string();
                assert_eq!(
                    serde_json::to_value(value).unwrap(),
                    serde_json::json!(text)
                );
                assert_eq!(text.parse::<T>().ok(), Some(*value));
            }
        }
        check(Role::ALL);
        check(DocumentStatus::ALL);
        check(Outcome::ALL);
        check(LegalBasis::ALL);
        check(TextSource::ALL);
        assert_eq!(
            "appeal".parse::<LegalBasis>().unwrap_err(),
            "legal_basis must be one of: subpoena, court-order, patient-authorization, \
             patient-access, other"
        );
    }
}
