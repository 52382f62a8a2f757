//! Lists that show patient data — worklists, logs, the overdue list, storage contents — leave
//! the use cases through [`App::worklist`]: one access-log row naming every patient whose data
//! the list shows, written before the list is returned. A new list is logged by giving its
//! rows a [`ShowsPatient`] impl and returning them through the helper.

use aliquot_store::{
    ProblemRecord, RecollectTaskRecord, RejectedSpecimenRecord, SendOutRecord, StoredSpecimenRecord,
};

use crate::tat::TestTatView;
use crate::{Actor, App, AppResult};

/// Whose data a row of a list is: the patient of this specimen or order.
pub(crate) enum Subject {
    Specimen(i64),
    Order(i64),
}

/// A row of a list that shows patient data.
pub(crate) trait ShowsPatient {
    fn subject(&self) -> Subject;
}

impl ShowsPatient for StoredSpecimenRecord {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

impl ShowsPatient for RejectedSpecimenRecord {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

impl ShowsPatient for ProblemRecord {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

impl ShowsPatient for RecollectTaskRecord {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

impl ShowsPatient for SendOutRecord {
    fn subject(&self) -> Subject {
        Subject::Specimen(self.specimen_id)
    }
}

impl ShowsPatient for TestTatView {
    fn subject(&self) -> Subject {
        Subject::Order(self.order_id)
    }
}

impl App {
    /// Returns `rows` after writing the access-log row of this list (`action`, `entity_type`,
    /// `entity_id`) with the patients the rows belong to. An empty list shows nobody and
    /// writes nothing.
    pub(crate) async fn worklist<T: ShowsPatient>(
        &self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        rows: Vec<T>,
    ) -> AppResult<Vec<T>> {
        self.log_shown(
            actor,
            action,
            entity_type,
            entity_id,
            rows.iter().map(ShowsPatient::subject),
        )
        .await?;
        Ok(rows)
    }

    /// The access-log row of a list made of several kinds of rows.
    pub(crate) async fn log_shown(
        &self,
        actor: &Actor,
        action: &str,
        entity_type: &str,
        entity_id: impl ToString,
        subjects: impl IntoIterator<Item = Subject>,
    ) -> AppResult<()> {
        let (mut specimens, mut orders) = (Vec::new(), Vec::new());
        for s in subjects {
            match s {
                Subject::Specimen(id) => specimens.push(id),
                Subject::Order(id) => orders.push(id),
            }
        }
        if specimens.is_empty() && orders.is_empty() {
            return Ok(());
        }
        for ids in [&mut specimens, &mut orders] {
            ids.sort_unstable();
            ids.dedup();
        }
        let patients = self.store.patients_of(&specimens, &orders).await?;
        self.store
            .record_access(&self.access(actor, action, entity_type, entity_id, patients))
            .await?;
        Ok(())
    }
}
