//! The profile store's record (a subset of the XDM Individual Profile) as Rust values, its Arrow
//! schema, and the conversion of a slice of records into one Arrow `RecordBatch`. Used by
//! `sample-profiles` (to write Parquet and NDJSON) and by the NDJSON source (to read it back into
//! the same Arrow shape the Parquet source yields).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, ListArray, MapArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One profile, as NDJSON carries it. Every field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(rename = "profile_id", default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_map: Option<BTreeMap<String, Vec<IdentityEntry>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_address: Option<HomeAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consents: Option<Consents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_membership: Option<BTreeMap<String, Membership>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityEntry {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PersonName>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Consents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing: Option<MarketingConsents>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarketingConsents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<ConsentValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsentValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_qualification_time: Option<DateTime<Utc>>,
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn identity_entry_fields() -> Fields {
    Fields::from(vec![utf8("id"), Field::new("primary", DataType::Boolean, true)])
}

fn identity_list_field() -> Arc<Field> {
    Arc::new(Field::new("element", DataType::Struct(identity_entry_fields()), true))
}

fn identity_entries_field() -> Arc<Field> {
    Arc::new(Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::List(identity_list_field()), true),
        ])),
        false,
    ))
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn membership_fields() -> Fields {
    Fields::from(vec![utf8("status"), Field::new("lastQualificationTime", timestamp_type(), true)])
}

fn membership_entries_field() -> Arc<Field> {
    Arc::new(Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Struct(membership_fields()), true),
        ])),
        false,
    ))
}

fn name_fields() -> Fields {
    Fields::from(vec![utf8("firstName"), utf8("lastName")])
}

fn address_fields() -> Fields {
    Fields::from(vec![utf8("city"), utf8("country"), utf8("postalCode")])
}

fn consent_fields() -> Fields {
    let val = Fields::from(vec![utf8("val")]);
    let marketing = Fields::from(vec![Field::new("email", DataType::Struct(val), true)]);
    Fields::from(vec![Field::new("marketing", DataType::Struct(marketing), true)])
}

/// The Arrow schema of the profile store's Parquet files (see DESIGN.md, "Profile store").
pub fn profile_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("profile_id"),
        Field::new("identityMap", DataType::Map(identity_entries_field(), false), true),
        Field::new(
            "person",
            DataType::Struct(Fields::from(vec![Field::new("name", DataType::Struct(name_fields()), true)])),
            true,
        ),
        Field::new("personalEmail", DataType::Struct(Fields::from(vec![utf8("address")])), true),
        Field::new("mobilePhone", DataType::Struct(Fields::from(vec![utf8("number")])), true),
        Field::new("homeAddress", DataType::Struct(address_fields()), true),
        Field::new("consents", DataType::Struct(consent_fields()), true),
        Field::new("segmentMembership", DataType::Map(membership_entries_field(), false), true),
    ]))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn nulls(valid: impl Iterator<Item = bool>) -> Option<NullBuffer> {
    let buffer = NullBuffer::from_iter(valid);
    (buffer.null_count() > 0).then_some(buffer)
}

fn struct_of(
    fields: Fields,
    arrays: Vec<ArrayRef>,
    valid: Option<NullBuffer>,
) -> Result<StructArray, arrow::error::ArrowError> {
    StructArray::try_new(fields, arrays, valid)
}

/// Converts records into one batch of [`profile_schema`].
pub fn to_batch(profiles: &[Profile]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let ids = strings(profiles.iter().map(|p| p.profile_id.as_deref()));
    let identity_map = identity_map_array(profiles)?;

    let names: Vec<Option<&PersonName>> =
        profiles.iter().map(|p| p.person.as_ref().and_then(|x| x.name.as_ref())).collect();
    let name = struct_of(
        name_fields(),
        vec![
            strings(names.iter().map(|n| n.and_then(|n| n.first_name.as_deref()))),
            strings(names.iter().map(|n| n.and_then(|n| n.last_name.as_deref()))),
        ],
        nulls(names.iter().map(Option::is_some)),
    )?;
    let person = struct_of(
        Fields::from(vec![Field::new("name", DataType::Struct(name_fields()), true)]),
        vec![Arc::new(name)],
        nulls(profiles.iter().map(|p| p.person.is_some())),
    )?;
    let email = struct_of(
        Fields::from(vec![utf8("address")]),
        vec![strings(profiles.iter().map(|p| p.personal_email.as_ref().and_then(|e| e.address.as_deref())))],
        nulls(profiles.iter().map(|p| p.personal_email.is_some())),
    )?;
    let phone = struct_of(
        Fields::from(vec![utf8("number")]),
        vec![strings(profiles.iter().map(|p| p.mobile_phone.as_ref().and_then(|e| e.number.as_deref())))],
        nulls(profiles.iter().map(|p| p.mobile_phone.is_some())),
    )?;
    let addr = |f: fn(&HomeAddress) -> Option<&str>| {
        strings(profiles.iter().map(move |p| p.home_address.as_ref().and_then(f)))
    };
    let home = struct_of(
        address_fields(),
        vec![addr(|a| a.city.as_deref()), addr(|a| a.country.as_deref()), addr(|a| a.postal_code.as_deref())],
        nulls(profiles.iter().map(|p| p.home_address.is_some())),
    )?;
    let consents = consents_array(profiles)?;
    let membership = membership_array(profiles)?;

    RecordBatch::try_new(
        profile_schema(),
        vec![
            ids,
            Arc::new(identity_map),
            Arc::new(person),
            Arc::new(email),
            Arc::new(phone),
            Arc::new(home),
            Arc::new(consents),
            Arc::new(membership),
        ],
    )
}

fn consents_array(profiles: &[Profile]) -> Result<StructArray, arrow::error::ArrowError> {
    let marketing: Vec<Option<&MarketingConsents>> =
        profiles.iter().map(|p| p.consents.as_ref().and_then(|c| c.marketing.as_ref())).collect();
    let email: Vec<Option<&ConsentValue>> = marketing.iter().map(|m| m.and_then(|m| m.email.as_ref())).collect();
    let val_fields = Fields::from(vec![utf8("val")]);
    let email_arr = struct_of(
        val_fields.clone(),
        vec![strings(email.iter().map(|e| e.and_then(|e| e.val.as_deref())))],
        nulls(email.iter().map(Option::is_some)),
    )?;
    let marketing_fields = Fields::from(vec![Field::new("email", DataType::Struct(val_fields), true)]);
    let marketing_arr =
        struct_of(marketing_fields, vec![Arc::new(email_arr)], nulls(marketing.iter().map(Option::is_some)))?;
    struct_of(consent_fields(), vec![Arc::new(marketing_arr)], nulls(profiles.iter().map(|p| p.consents.is_some())))
}

fn identity_map_array(profiles: &[Profile]) -> Result<MapArray, arrow::error::ArrowError> {
    let mut map_offsets = vec![0i32];
    let mut keys: Vec<&str> = Vec::new();
    let mut list_offsets = vec![0i32];
    let mut ids: Vec<Option<&str>> = Vec::new();
    let mut primaries: Vec<Option<bool>> = Vec::new();
    for p in profiles {
        for (ns, entries) in p.identity_map.iter().flatten() {
            keys.push(ns);
            for e in entries {
                ids.push(e.id.as_deref());
                primaries.push(e.primary);
            }
            list_offsets.push(ids.len() as i32);
        }
        map_offsets.push(keys.len() as i32);
    }
    let entry = struct_of(
        identity_entry_fields(),
        vec![strings(ids.into_iter()), Arc::new(BooleanArray::from(primaries))],
        None,
    )?;
    let lists =
        ListArray::try_new(identity_list_field(), OffsetBuffer::new(list_offsets.into()), Arc::new(entry), None)?;
    let DataType::Struct(kv_fields) = identity_entries_field().data_type().clone() else { unreachable!() };
    let kv = struct_of(kv_fields, vec![strings(keys.into_iter().map(Some)), Arc::new(lists)], None)?;
    MapArray::try_new(
        identity_entries_field(),
        OffsetBuffer::new(map_offsets.into()),
        kv,
        nulls(profiles.iter().map(|p| p.identity_map.is_some())),
        false,
    )
}

fn membership_array(profiles: &[Profile]) -> Result<MapArray, arrow::error::ArrowError> {
    let mut offsets = vec![0i32];
    let mut keys: Vec<&str> = Vec::new();
    let mut statuses: Vec<Option<&str>> = Vec::new();
    let mut times: Vec<Option<i64>> = Vec::new();
    for p in profiles {
        for (seg, m) in p.segment_membership.iter().flatten() {
            keys.push(seg);
            statuses.push(m.status.as_deref());
            times.push(m.last_qualification_time.map(|t| t.timestamp_micros()));
        }
        offsets.push(keys.len() as i32);
    }
    let value = struct_of(
        membership_fields(),
        vec![strings(statuses.into_iter()), Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC"))],
        None,
    )?;
    let DataType::Struct(kv_fields) = membership_entries_field().data_type().clone() else { unreachable!() };
    let kv = struct_of(kv_fields, vec![strings(keys.into_iter().map(Some)), Arc::new(value)], None)?;
    MapArray::try_new(
        membership_entries_field(),
        OffsetBuffer::new(offsets.into()),
        kv,
        nulls(profiles.iter().map(|p| p.segment_membership.is_some())),
        false,
    )
}
