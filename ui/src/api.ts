// The station's IPC surface: typed wrappers over the Tauri commands of `src-tauri`.
// The types mirror `crates/engine/src/api.rs` (snake_case JSON) and `src-tauri/src`.

import { Channel, invoke } from "@tauri-apps/api/core";

export type OtpKind = "hotp" | "totp";

export type ProvisioningMode =
  | { kind: "local" }
  | { kind: "central"; server_url: string; auth_codes: string[] };

export type ExportProtection =
  | { kind: "password"; password: string }
  | { kind: "key"; key_hex: string }
  | { kind: "certificate"; cert_pem: string };

export type ExportTarget = "generic" | "privacyidea" | "freeipa" | "linotp";

export interface ExportRequest {
  /** Empty: the app picks a file under its exports directory. */
  path: string;
  protection: ExportProtection;
  target: ExportTarget;
}

/** The HMAC hash of the OTPs (issue 7); tokens that cannot compute it fail before a key
 * (no family computes sha512, which only imported seed files carry). */
export type OtpHash = "sha1" | "sha256" | "sha512";

export interface BatchRequest {
  name: string;
  otp: OtpKind;
  digits: number;
  period: number;
  count: number | null;
  mode: ProvisioningMode;
  export: ExportRequest | null;
  operator: string | null;
  /** Absent: sha1. */
  hash?: OtpHash;
}

export interface DeviceInfo {
  family: string;
  model: string;
  serial: string;
  firmware: string;
  free_slots: string[];
  emulated: boolean;
}

export type DeviceEvent =
  | { event: "arrived"; device: DeviceInfo }
  | { event: "removed"; device: DeviceInfo };

export type Stage = "queued" | "dskpp" | "writing" | "verifying" | "done" | "failed";

export interface ProgressEvent {
  batch_id: number;
  serial: string;
  family: string;
  stage: Stage;
  attempt: number;
  message: string | null;
  finished: number;
  total: number;
}

export interface ExportRecord {
  path: string;
  sha256: string;
  protection: string;
  target: ExportTarget;
  keys: number;
  created_at: string;
  /** Serials the target's profile wrote differently (LinOTP's OATH serials). */
  renamed_serials: RenamedSerial[];
}

export interface RenamedSerial {
  /** The serial of the device. */
  device: string;
  /** The serial written in the file, which the validation server knows. */
  written: string;
}

export interface BatchSummary {
  id: number;
  name: string;
  state: string;
  otp: OtpKind;
  digits: number;
  period: number | null;
  hash: OtpHash;
  mode: string;
  operator: string | null;
  created_at: string;
  finished_at: string | null;
  tokens: number;
  verified: number;
  failed: number;
  exports: ExportRecord[];
}

export interface TokenRow {
  key_id: string;
  family: string;
  model: string;
  serial: string;
  slot: string;
  otp: OtpKind;
  digits: number;
  counter: number | null;
  period: number | null;
  state: string;
  verification: string | null;
  error: string | null;
  /** A failed token whose failure may go away when the batch is re-run (issue 5); the engine
   * always sends it, optional only for rows written before it existed. */
  retryable?: boolean;
}

export interface BatchDetail {
  batch: BatchSummary;
  tokens: TokenRow[];
}

export interface AuditReport {
  ok: boolean;
  events: number;
  first_broken: string | null;
}

/** One event of the station's hash-chained audit log (never a secret). */
export interface AuditEvent {
  /** Position in the chain, from 1. */
  id: number;
  /** RFC 3339. */
  time: string;
  kind: string;
  batch: number | null;
  /** Serial of the token it concerns. */
  serial: string | null;
  key: number | null;
  detail: Record<string, unknown>;
  /** First 12 hex digits of the event's chain hash. */
  hash_prefix: string;
}

export interface Settings {
  db_path: string | null;
  server_url: string | null;
  server_ca_pem: string | null;
  demo: boolean;
}

export interface SettingsView {
  settings: Settings;
  effective_db_path: string | null;
  db_from_env: boolean;
  emulator_dir: string;
  exports_dir: string;
  tls_trust_in_force: string | null;
  passphrase_set: boolean;
}

/** What every failed command rejects with. */
export interface CommandError {
  code: string;
  message: string;
}

/** Normalizes whatever a rejected invoke carried into `{code, message}`. */
export function asCommandError(e: unknown): CommandError {
  if (typeof e === "object" && e !== null && "code" in e && "message" in e) {
    return { code: String(e.code), message: String(e.message) };
  }
  return { code: "internal", message: String(e) };
}

export const api = {
  settingsGet: () => invoke<SettingsView>("settings_get"),
  settingsSet: (settings: Settings, passphrase: string | null) =>
    invoke<SettingsView>("settings_set", { settings, passphrase }),
  devices: () => invoke<DeviceInfo[]>("devices"),
  watchDevices: (onEvent: (e: DeviceEvent) => void) => {
    const channel = new Channel<DeviceEvent>();
    channel.onmessage = onEvent;
    return invoke<void>("watch_devices", { onEvent: channel });
  },
  attachEmulated: (model: string, count: number) =>
    invoke<DeviceInfo[]>("attach_emulated", { request: { model, count } }),
  provision: (request: BatchRequest, onProgress: (e: ProgressEvent) => void) => {
    const channel = new Channel<ProgressEvent>();
    channel.onmessage = onProgress;
    return invoke<BatchSummary>("provision", { request, onProgress: channel });
  },
  cancelRun: () => invoke<boolean>("cancel_run"),
  reissue: (
    serial: string,
    mode: ProvisioningMode,
    exportTo: ExportRequest | null,
    onProgress: (e: ProgressEvent) => void,
  ) => {
    const channel = new Channel<ProgressEvent>();
    channel.onmessage = onProgress;
    const request = { serial, mode, export: exportTo };
    return invoke<BatchSummary>("reissue", { request, onProgress: channel });
  },
  batches: () => invoke<BatchSummary[]>("batches"),
  batch: (idOrName: string) => invoke<BatchDetail>("batch", { idOrName }),
  exportBatch: (idOrName: string, request: ExportRequest) =>
    invoke<ExportRecord>("export_batch", { idOrName, request }),
  auditVerify: () => invoke<AuditReport>("audit_verify"),
  auditLog: (batchId: number | null, limit: number) =>
    invoke<AuditEvent[]>("audit_log", { batchId, limit }),
  revealSecret: (keyId: string) => invoke<string>("reveal_secret", { keyId }),
};
