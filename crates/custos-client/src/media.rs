//! Sending files with a message, and saving received ones under the
//! device's home.
//!
//! # Security meaning
//! Each file is sealed on this device under a fresh key
//! ([`crate::attachment::seal_attachment`]) and only the ciphertext is
//! uploaded; the key, the plaintext's SHA-256 and size, and the service's
//! locator travel inside the franked payload, so the service never reads a
//! file and a report can prove one. A received file is written only if it
//! decrypts and matches the committed hash and size
//! ([`crate::attachment::open_attachment`]); otherwise the message says why.

use std::path::PathBuf;

use custos_wire::ConversationId;
use custos_wire::payload::{ContentType, MAX_ATTACHMENTS, Payload};

use crate::attachment::{open_attachment, seal_attachment};
use crate::device::{Device, DeviceError};
use crate::send::SentMessage;
use crate::store::StoredMessage;

/// The folder, under the device's home, where received files are saved
/// (one subfolder per message id, one file per attachment index).
pub const ATTACHMENTS_DIR: &str = "attachments";

impl Device {
    /// Sends `text` with `files` (at most [`MAX_ATTACHMENTS`]) attached:
    /// each is encrypted here, uploaded, and referenced from the payload.
    pub async fn send_with_attachments(
        &mut self,
        conv: &ConversationId,
        text: &str,
        files: &[Vec<u8>],
    ) -> Result<SentMessage, DeviceError> {
        if files.len() > MAX_ATTACHMENTS {
            return Err(DeviceError::TooManyAttachments {
                max: MAX_ATTACHMENTS,
            });
        }
        // Vouchers first (known-content detection, `crate::matching`): a
        // table the device refuses stops the send before anything is uploaded.
        let vouchers = self.vouchers_for(files).await?;
        let mut attachments = Vec::with_capacity(files.len());
        for file in files {
            // The blob does not depend on the locator, which the service
            // assigns on upload.
            let mut sealed = seal_attachment(file, "").map_err(DeviceError::Attachment)?;
            sealed.attachment.locator = self.api.upload_blob(sealed.blob).await?;
            attachments.push(sealed.attachment);
        }
        // One voucher per blob: one request for one attachment, one batch
        // (`POST /v1/vouchers`) for several.
        if let Some(vouchers) = vouchers {
            let mut pairs: Vec<(String, Vec<u8>)> = attachments
                .iter()
                .map(|a| a.locator.clone())
                .zip(vouchers)
                .collect();
            match pairs.as_mut_slice() {
                [] => {}
                [(locator, voucher)] => {
                    self.api
                        .upload_voucher(locator, std::mem::take(voucher))
                        .await?
                }
                _ => self.api.upload_vouchers(&pairs).await?,
            }
        }
        let payload = Payload {
            content_type: ContentType::Text,
            sent_at: self.clock.now_millis(),
            franking_key: *crate::franking::fresh_key(),
            body: text.as_bytes().to_vec(),
            attachments,
        };
        self.send_payload(conv, payload, text).await
    }

    /// Downloads, checks and saves the attachments of `messages` (just
    /// received) under `<home>/attachments/<message id>/<index>`, and lists
    /// the saved paths in each message. A file that is missing or does not
    /// match its commitment is not written; its error is listed instead.
    pub(crate) async fn save_attachments(
        &mut self,
        messages: &mut [StoredMessage],
    ) -> Result<(), DeviceError> {
        for m in messages.iter_mut() {
            let Ok(id) = <[u8; 32]>::try_from(hex::decode(&m.id).unwrap_or_default()) else {
                continue;
            };
            let Some((_, payload, _)) = self.store.message_material(&id)? else {
                continue;
            };
            let Ok(payload) = Payload::decode(&payload) else {
                continue;
            };
            for (index, attachment) in payload.attachments.iter().enumerate() {
                let path = self.attachment_path(&m.id, index);
                if path.exists() {
                    m.attachments.push(path.display().to_string());
                    continue;
                }
                let saved = match self.api.download_blob(&attachment.locator).await {
                    Ok(blob) => open_attachment(attachment, &blob)
                        .map_err(|e| e.to_string())
                        .and_then(|plain| write_private(&path, &plain).map_err(|e| e.to_string())),
                    Err(e) => Err(e.to_string()),
                };
                match saved {
                    Ok(()) => m.attachments.push(path.display().to_string()),
                    Err(e) => m.attachment_errors.push(format!("attachment {index}: {e}")),
                }
            }
        }
        Ok(())
    }

    fn attachment_path(&self, message_id: &str, index: usize) -> PathBuf {
        self.home
            .join(ATTACHMENTS_DIR)
            .join(message_id)
            .join(index.to_string())
    }
}

/// Writes `bytes` to `path` (creating its folder), readable by the owner
/// only, through a temporary file renamed into place so that a crash never
/// leaves a partial file under the final name.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
