//! Typed views of the segments a laboratory uses. Each accessor returns the
//! field as a [`Value`] (navigate to components with `.component(n)`), or
//! `None` when the segment is shorter.

use crate::parse::{Segment, Value};

macro_rules! typed_segment {
    ($(#[$doc:meta])* $ty:ident, $name:literal, { $($(#[$fdoc:meta])* $field:ident = $n:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $ty<'d, 'a>(pub Segment<'d, 'a>);

        impl<'d, 'a> $ty<'d, 'a> {
            /// The segment name this view expects.
            pub const NAME: &'static str = $name;

            /// Wraps `seg` if its name is right.
            pub fn from_segment(seg: Segment<'d, 'a>) -> Option<Self> {
                (seg.name_bytes() == $name.as_bytes()).then_some($ty(seg))
            }

            /// The underlying segment.
            pub fn segment(&self) -> Segment<'d, 'a> {
                self.0
            }

            $(
                $(#[$fdoc])*
                pub fn $field(&self) -> Option<Value<'d, 'a>> {
                    self.0.field($n)
                }
            )*
        }
    };
}

typed_segment!(
    /// MSH: message header.
    Msh, "MSH", {
    /// MSH-1 field separator.
    field_separator = 1,
    /// MSH-2 encoding characters.
    encoding_characters = 2,
    /// MSH-3 sending application (HD).
    sending_application = 3,
    /// MSH-4 sending facility.
    sending_facility = 4,
    /// MSH-5 receiving application.
    receiving_application = 5,
    /// MSH-6 receiving facility.
    receiving_facility = 6,
    /// MSH-7 date/time of message.
    date_time = 7,
    /// MSH-9 message type `code^trigger^structure`.
    message_type = 9,
    /// MSH-10 control ID.
    control_id = 10,
    /// MSH-11 processing ID.
    processing_id = 11,
    /// MSH-12 version ID.
    version = 12,
    /// MSH-15 accept acknowledgment type.
    accept_ack_type = 15,
    /// MSH-16 application acknowledgment type.
    application_ack_type = 16,
    /// MSH-18 character set.
    charset = 18,
    /// MSH-21 message profile identifier.
    profile = 21,
});

typed_segment!(
    /// PID: patient identification.
    Pid, "PID", {
    /// PID-1 set ID.
    set_id = 1,
    /// PID-3 patient identifier list (CX, repeats).
    identifiers = 3,
    /// PID-5 patient name (XPN).
    name = 5,
    /// PID-7 date of birth.
    birth_date = 7,
    /// PID-8 administrative sex.
    sex = 8,
    /// PID-10 race.
    race = 10,
    /// PID-11 address.
    address = 11,
    /// PID-13 phone.
    phone = 13,
    /// PID-18 account number.
    account_number = 18,
});

typed_segment!(
    /// PV1: patient visit.
    Pv1, "PV1", {
    /// PV1-2 patient class.
    patient_class = 2,
    /// PV1-3 assigned location.
    location = 3,
    /// PV1-7 attending doctor.
    attending_doctor = 7,
    /// PV1-8 referring doctor.
    referring_doctor = 8,
    /// PV1-19 visit number.
    visit_number = 19,
    /// PV1-44 admit date/time.
    admit_time = 44,
});

typed_segment!(
    /// ORC: common order.
    Orc, "ORC", {
    /// ORC-1 order control.
    order_control = 1,
    /// ORC-2 placer order number.
    placer_order_number = 2,
    /// ORC-3 filler order number.
    filler_order_number = 3,
    /// ORC-4 placer group number.
    placer_group_number = 4,
    /// ORC-5 order status.
    order_status = 5,
    /// ORC-7 quantity/timing (priority in component 6).
    quantity_timing = 7,
    /// ORC-9 transaction date/time.
    transaction_time = 9,
    /// ORC-10 entered by.
    entered_by = 10,
    /// ORC-12 ordering provider.
    ordering_provider = 12,
    /// ORC-21 ordering facility.
    ordering_facility = 21,
});

typed_segment!(
    /// OBR: observation request.
    Obr, "OBR", {
    /// OBR-1 set ID.
    set_id = 1,
    /// OBR-2 placer order number.
    placer_order_number = 2,
    /// OBR-3 filler order number.
    filler_order_number = 3,
    /// OBR-4 universal service identifier.
    universal_service_id = 4,
    /// OBR-5 priority (old).
    priority = 5,
    /// OBR-7 observation (collection) date/time.
    observation_time = 7,
    /// OBR-11 specimen action code.
    specimen_action_code = 11,
    /// OBR-14 specimen received date/time.
    specimen_received_time = 14,
    /// OBR-15 specimen source.
    specimen_source = 15,
    /// OBR-16 ordering provider.
    ordering_provider = 16,
    /// OBR-22 results report/status change time.
    status_change_time = 22,
    /// OBR-24 diagnostic service section.
    diagnostic_section = 24,
    /// OBR-25 result status.
    result_status = 25,
    /// OBR-27 quantity/timing (priority in component 6).
    quantity_timing = 27,
    /// OBR-29 parent.
    parent = 29,
});

typed_segment!(
    /// OBX: observation/result.
    Obx, "OBX", {
    /// OBX-1 set ID.
    set_id = 1,
    /// OBX-2 value type.
    value_type = 2,
    /// OBX-3 observation identifier.
    observation_id = 3,
    /// OBX-4 observation sub-ID.
    sub_id = 4,
    /// OBX-5 observation value (may repeat).
    value = 5,
    /// OBX-6 units.
    units = 6,
    /// OBX-7 reference range.
    reference_range = 7,
    /// OBX-8 abnormal flags (repeat from 2.5).
    abnormal_flags = 8,
    /// OBX-11 observation result status.
    result_status = 11,
    /// OBX-14 date/time of the observation.
    observation_time = 14,
    /// OBX-15 producer's ID.
    producer = 15,
    /// OBX-16 responsible observer.
    responsible_observer = 16,
    /// OBX-17 observation method.
    method = 17,
    /// OBX-18 equipment instance identifier.
    equipment = 18,
    /// OBX-19 date/time of the analysis.
    analysis_time = 19,
    /// OBX-23 performing organization name.
    performing_organization = 23,
});

typed_segment!(
    /// NTE: notes and comments.
    Nte, "NTE", {
    /// NTE-1 set ID.
    set_id = 1,
    /// NTE-2 source of comment.
    source = 2,
    /// NTE-3 comment (FT, repeats).
    comment = 3,
    /// NTE-4 comment type.
    comment_type = 4,
});

typed_segment!(
    /// SPM: specimen.
    Spm, "SPM", {
    /// SPM-1 set ID.
    set_id = 1,
    /// SPM-2 specimen ID (EIP `placer&..^filler&..`).
    specimen_id = 2,
    /// SPM-3 parent specimen ID.
    parent_id = 3,
    /// SPM-4 specimen type.
    specimen_type = 4,
    /// SPM-8 source site.
    source_site = 8,
    /// SPM-11 specimen role.
    role = 11,
    /// SPM-17 collection date/time (DR).
    collection_time = 17,
    /// SPM-18 received date/time.
    received_time = 18,
    /// SPM-20 availability.
    availability = 20,
    /// SPM-21 reject reason.
    reject_reason = 21,
    /// SPM-24 condition.
    condition = 24,
});

typed_segment!(
    /// MSA: message acknowledgment.
    Msa, "MSA", {
    /// MSA-1 acknowledgment code.
    ack_code = 1,
    /// MSA-2 control ID of the acknowledged message.
    control_id = 2,
    /// MSA-3 text message (deprecated from 2.4).
    text = 3,
    /// MSA-4 expected sequence number.
    expected_sequence = 4,
});

typed_segment!(
    /// ERR: error.
    Err, "ERR", {
    /// ERR-1 error code and location (v2.3.1 ELD, repeats).
    code_and_location = 1,
    /// ERR-2 error location (ERL).
    location = 2,
    /// ERR-3 HL7 error code (table 0357).
    hl7_error_code = 3,
    /// ERR-4 severity (E/W/I).
    severity = 4,
    /// ERR-5 application error code.
    application_error_code = 5,
    /// ERR-7 diagnostic information.
    diagnostic = 7,
    /// ERR-8 user message.
    user_message = 8,
});

typed_segment!(
    /// QPD: query parameter definition.
    Qpd, "QPD", {
    /// QPD-1 message query name.
    query_name = 1,
    /// QPD-2 query tag.
    query_tag = 2,
    /// QPD-3 first user parameter.
    parameters = 3,
});

typed_segment!(
    /// QAK: query acknowledgment.
    Qak, "QAK", {
    /// QAK-1 query tag.
    query_tag = 1,
    /// QAK-2 query response status.
    status = 2,
    /// QAK-3 message query name.
    query_name = 3,
    /// QAK-4 hit count total.
    hit_count = 4,
    /// QAK-5 this payload.
    this_payload = 5,
    /// QAK-6 hits remaining.
    hits_remaining = 6,
});
