//! Pure decisions: validation, reference resolution, schedules, file names and conditions.
//! Nothing here does I/O or reads the clock; time is always a parameter.

pub mod conditions;
pub mod dataflow_status;
pub mod fields;
pub mod file_name;
pub mod history;
pub mod runs;
pub mod schedule;
pub mod text;
pub mod tick;
pub mod validate;
