//! The worker's side of families: a container's members, as the `extract` child wrote them,
//! are hashed here (the child's word is not taken for what it wrote), stored at their content
//! keys, and become children of the container's evidence in its finishing transaction
//! ([`store::insert_members`]). Each child then has an ingest of its own, which reads its
//! bytes back, checks them against the sha256 taken here, and deduplicates and extracts them
//! as any evidence; a child that is itself a container opens in turn, one level deeper.

use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use queue::JobError;

use crate::access::TenantId;
use crate::config::FamilySettings;
use crate::extract::{Extracted, Member, family::member_filename};
use crate::model::EvidenceId;
use crate::storage::{self, Storage};
use crate::store::NewMember;

use super::storage_failure;

/// The id of a container's `index`-th member, at `path` in it: the same each time the
/// container is read, so a retried or reindexed parent makes no second child. A version 8
/// UUID from the first 16 bytes of `sha256(parent id ‖ index ‖ path)`.
pub fn member_id(parent: EvidenceId, index: usize, path: &str) -> EvidenceId {
    let digest = Sha256::new()
        .chain_update(parent.0.as_bytes())
        .chain_update((index as u64).to_be_bytes())
        .chain_update(path.as_bytes())
        .finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 of 32 bytes");
    EvidenceId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Store each member the child wrote in `dir` at its content key and describe it as the
/// child evidence it becomes. Bytes the tenant has stored already (a file that is in two
/// archives) are not sent again.
pub async fn store_members(
    storage: &Storage,
    tenant: &TenantId,
    parent: EvidenceId,
    dir: &Path,
    members: &[Member],
) -> Result<Vec<NewMember>, JobError> {
    let mut stored = Vec::with_capacity(members.len());
    for (index, member) in members.iter().enumerate() {
        let file = dir.join(index.to_string());
        let hashed = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || hash_file(&file))
                .await
                .map_err(JobError::retryable)?
                .map_err(|e| JobError::retryable(format!("cannot read member {index} the extraction wrote: {e}")))?
        };
        let (size, sha256, md5) = hashed;
        let key = storage::content_key(tenant, &sha256);
        let storage_error = |e| storage_failure(format!("storing member {:?} at {key}", member.path), e);
        if storage.head(&key).await.map_err(storage_error)? != Some(size) {
            storage.upload_file(&key, &file, size, &md5).await.map_err(storage_error)?;
        }
        let content_type = match crate::model::check_media_type(&member.content_type) {
            Ok(()) => member.content_type.to_ascii_lowercase(),
            Err(_) => "application/octet-stream".to_owned(),
        };
        stored.push(NewMember {
            id: member_id(parent, index, &member.path),
            filename: member_filename(&member.path, index),
            content_type,
            member_path: member.path.clone(),
            size_bytes: size as i64,
            sha256,
            object_key: key,
        });
    }
    Ok(stored)
}

/// Size, sha256 and MD5 (for the store's check of what it received) of a file.
fn hash_file(path: &Path) -> std::io::Result<(u64, String, String)> {
    let mut file = std::fs::File::open(path)?;
    let (mut sha256, mut md5) = (Sha256::new(), Md5::new());
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        sha256.update(&buffer[..n]);
        md5.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(sha256.finalize()), hex::encode(md5.finalize())))
}

/// What the container's `family_note` says: the extraction's own (members past a limit or
/// unreadable), or, when members could not be written at all, that the family is as deep as
/// `INGEST_FAMILY_MAX_DEPTH` lets it be.
pub fn note(x: &Extracted, depth: i32, settings: &FamilySettings) -> Option<String> {
    match &x.family_note {
        Some(note) => Some(note.clone()),
        None if x.members_left > 0 && x.members.is_empty() && depth >= settings.max_depth => Some(format!(
            "{} member(s) not made evidence: this container is {depth} level(s) deep in its family, the most \
             whose members are opened (INGEST_FAMILY_MAX_DEPTH={})",
            x.members_left, settings.max_depth
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_id_depends_on_its_parent_its_place_and_its_path_only() {
        let parent = EvidenceId(uuid::Uuid::from_u128(7));
        let id = member_id(parent, 0, "a/b.txt");
        assert_eq!(id, member_id(parent, 0, "a/b.txt"), "the same each time the parent is read");
        assert_eq!(id.0.get_version_num(), 8);
        // Two entries of the same name in one archive are two members.
        assert_ne!(id, member_id(parent, 1, "a/b.txt"));
        assert_ne!(id, member_id(parent, 0, "a/c.txt"));
        assert_ne!(id, member_id(EvidenceId(uuid::Uuid::from_u128(8)), 0, "a/b.txt"));
    }
}
