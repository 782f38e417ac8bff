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

use crate::config::FamilySettings;
use crate::extract::family::clean_path;
use crate::extract::{Extracted, Member};
use crate::model::{EvidenceId, TenantId};
use crate::storage::{self, Storage, StorageError};
use crate::store::NewMember;

/// The id of the member at `index` in its container (its place there, not among the members
/// written), at `path`: the same each time the container is read, so a retried or reindexed
/// parent makes no second child, whatever was left out before it. A version 8 UUID from the
/// first 16 bytes of `sha256(parent id ‖ index ‖ path)`.
pub fn member_id(parent: EvidenceId, index: usize, path: &str) -> EvidenceId {
    let digest = Sha256::new()
        .chain_update(parent.0.as_bytes())
        .chain_update((index as u64).to_be_bytes())
        .chain_update(path.as_bytes())
        .finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 of 32 bytes");
    EvidenceId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// The file name a member's evidence gets: the last part of its path, or `member-<n>` when
/// that is empty; at most 255 characters, with no `/`, `\` or control or bidirectional
/// character (the rules of a client's file name).
pub fn member_filename(path: &str, index: usize) -> String {
    let last = path.rsplit(['/', '\\']).find(|part| !part.trim().is_empty()).unwrap_or_default();
    let name: String =
        last.trim().chars().filter(|c| !c.is_control() && !crate::model::is_bidi_control(*c)).take(255).collect();
    if name.trim().is_empty() { format!("member-{index}") } else { name.trim().to_owned() }
}

/// Why the members could not be stored: the object store failed (`context`, the error).
pub struct StoreError(pub String, pub StorageError);

/// Store the members the child wrote in `dir` (at most `limit` of them) at their content keys
/// and describe each as the child evidence it becomes; the members that could not be taken,
/// with why, go to `left`. Bytes the tenant has stored already (a file in two archives) are not
/// sent again. The child's files are not trusted: each is opened without following a link,
/// must be a regular file of the size the child reported, and is read no further than that.
pub async fn store_members(
    storage: &Storage,
    tenant: &TenantId,
    parent: EvidenceId,
    dir: &Path,
    members: &[Member],
    limit: usize,
    left: &mut Vec<String>,
) -> Result<Vec<NewMember>, StoreError> {
    let mut stored = Vec::with_capacity(members.len().min(limit));
    for (n, member) in members.iter().take(limit).enumerate() {
        let path = clean_path(&member.path);
        let file = dir.join(n.to_string());
        let hashed = {
            let (file, size) = (file.clone(), member.size);
            tokio::task::spawn_blocking(move || hash_file(&file, size)).await
        };
        let size = member.size;
        let (sha256, md5) = match hashed {
            Ok(Ok(hashed)) => hashed,
            Ok(Err(e)) => {
                left.push(format!("{path} (not as the extraction said it wrote it: {e})"));
                continue;
            }
            Err(e) => {
                left.push(format!("{path} (not read: {e})"));
                continue;
            }
        };
        let key = storage::content_key(tenant, &sha256);
        let failed = |e| StoreError(format!("storing member {path:?} at {key}"), e);
        storage.upload_file_once(&key, &file, size, &md5).await.map_err(failed)?;
        let content_type = match crate::model::check_media_type(&member.content_type) {
            Ok(()) => member.content_type.to_ascii_lowercase(),
            Err(_) => "application/octet-stream".to_owned(),
        };
        stored.push(NewMember {
            id: member_id(parent, member.index, &path),
            filename: member_filename(&path, member.index),
            content_type,
            member_path: path,
            size_bytes: size as i64,
            sha256,
            object_key: key,
        });
    }
    if members.len() > limit {
        left.push(format!(
            "{} more past the family's limit of members (INGEST_FAMILY_MAX_MEMBERS)",
            members.len() - limit
        ));
    }
    Ok(stored)
}

/// sha256 and MD5 (for the store's check of what it received) of a regular file of `size`
/// bytes, opened without following a link and without waiting on a pipe.
fn hash_file(path: &Path, size: u64) -> std::io::Result<(String, String)> {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_size as u64 != size {
        return Err(std::io::Error::other(format!("not a regular file of {size} bytes")));
    }
    let mut file = std::fs::File::from(fd).take(size + 1);
    let (mut sha256, mut md5) = (Sha256::new(), Md5::new());
    let mut buffer = vec![0u8; 1 << 16];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        sha256.update(&buffer[..n]);
        md5.update(&buffer[..n]);
        read += n as u64;
    }
    if read != size {
        return Err(std::io::Error::other(format!("{read} bytes, not {size}")));
    }
    Ok((hex::encode(sha256.finalize()), hex::encode(md5.finalize())))
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

    #[test]
    fn a_members_name_is_the_last_part_of_its_path_as_a_client_could_send_it() {
        assert_eq!(member_filename("exhibits/2024/ledger.xlsx", 0), "ledger.xlsx");
        assert_eq!(member_filename("C:\\scans\\page 1.png", 1), "page 1.png");
        assert_eq!(member_filename("folder/", 2), "folder");
        assert_eq!(member_filename("", 3), "member-3");
        assert_eq!(member_filename("a/\u{202e}gpj.exe", 4), "gpj.exe");
        assert_eq!(member_filename(&"x".repeat(300), 5).chars().count(), 255);
    }

    #[test]
    fn a_member_file_is_read_only_as_a_regular_file_of_the_size_the_child_said() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("0");
        std::fs::write(&file, b"four").unwrap();
        let (sha256, _) = hash_file(&file, 4).unwrap();
        assert_eq!(sha256, "04efaf080f5a3e74e1c29d1ca6a48569382cbbcd324e8d59d2b83ef21c039f00");
        assert!(hash_file(&file, 3).is_err(), "another size than the child reported");
        // A link the child could have left there, to a file the worker may read.
        let link = dir.path().join("1");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(hash_file(&link, 4).is_err());
        // A pipe would block a reader forever.
        let fifo = dir.path().join("2");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::RUSR, 0).unwrap();
        assert!(hash_file(&fifo, 0).is_err());
        assert!(hash_file(&dir.path().join("3"), 0).is_err(), "a file the child did not write");
    }
}
