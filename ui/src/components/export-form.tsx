// The export protection form, shared by New batch (export when the batch ends), Run and
// History (re-export). It never keeps a password longer than the form lives.

import { useState } from "preact/hooks";
import type { ExportProtection, ExportRequest, ExportTarget } from "../api";

export type ProtectionKind = ExportProtection["kind"];

export interface ExportDraft {
  kind: ProtectionKind;
  password: string;
  confirm: string;
  keyHex: string;
  certPem: string;
  path: string;
  target: ExportTarget;
}

export const emptyDraft = (): ExportDraft => ({
  kind: "password",
  password: "",
  confirm: "",
  keyHex: "",
  certPem: "",
  path: "",
  target: "generic",
});

/** The request for a draft, or the reason it is not complete. */
export function exportRequest(d: ExportDraft): ExportRequest | string {
  let protection: ExportProtection;
  switch (d.kind) {
    case "password":
      if (d.password.length < 8) return "the export password needs at least 8 characters";
      if (d.password !== d.confirm) return "the two passwords differ";
      protection = { kind: "password", password: d.password };
      break;
    case "key":
      if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(d.keyHex.trim()))
        return "the pre-shared key must be 16, 24 or 32 bytes of hex";
      protection = { kind: "key", key_hex: d.keyHex.trim() };
      break;
    case "certificate":
      if (!d.certPem.trim()) return "choose the recipient's certificate (PEM file)";
      protection = { kind: "certificate", cert_pem: d.certPem.trim() };
      break;
  }
  return { path: d.path.trim(), protection, target: d.target };
}

export function ExportFields(props: {
  draft: ExportDraft;
  onChange: (d: ExportDraft) => void;
  idPrefix: string;
}) {
  const { draft: d, onChange, idPrefix: p } = props;
  const set = (patch: Partial<ExportDraft>) => onChange({ ...d, ...patch });
  const value = (e: Event) => (e.currentTarget as HTMLInputElement).value;
  return (
    <div>
      <div class="row">
        <label>
          Protection
          <select
            id={`${p}-protection`}
            value={d.kind}
            onChange={(e) => set({ kind: value(e) as ProtectionKind })}
          >
            <option value="password">password (PBKDF2)</option>
            <option value="key">pre-shared AES key</option>
            <option value="certificate">certificate (RSA)</option>
          </select>
        </label>
        <label>
          Format
          <select
            id={`${p}-target`}
            value={d.target}
            onChange={(e) => set({ target: value(e) as ExportTarget })}
          >
            <option value="generic">RFC 6030</option>
            <option value="privacyidea">privacyIDEA</option>
            <option value="freeipa">FreeIPA</option>
            <option value="linotp">LinOTP</option>
          </select>
        </label>
      </div>
      {d.kind === "password" && (
        <div class="row">
          <label>
            Password
            <input
              id={`${p}-password`}
              type="password"
              autocomplete="new-password"
              value={d.password}
              onInput={(e) => set({ password: value(e) })}
            />
          </label>
          <label>
            Repeat
            <input
              id={`${p}-confirm`}
              type="password"
              autocomplete="new-password"
              value={d.confirm}
              onInput={(e) => set({ confirm: value(e) })}
            />
          </label>
        </div>
      )}
      {d.kind === "key" && (
        <div class="row">
          <label>
            Key (hex)
            <input
              id={`${p}-key`}
              class="wide mono"
              type="password"
              value={d.keyHex}
              onInput={(e) => set({ keyHex: value(e) })}
            />
          </label>
        </div>
      )}
      {d.kind === "certificate" && (
        <div class="row">
          <label>
            Certificate (PEM file)
            <input
              id={`${p}-cert`}
              class="wide"
              value={d.certPem}
              onInput={(e) => set({ certPem: value(e) })}
            />
          </label>
        </div>
      )}
      <div class="row">
        <label>
          File (empty: the app's exports folder)
          <input
            id={`${p}-path`}
            class="wide"
            value={d.path}
            placeholder="/path/to/batch.pskcxml"
            onInput={(e) => set({ path: value(e) })}
          />
        </label>
      </div>
    </div>
  );
}

/** A self-contained export panel: fields, an Export button, the result. */
export function ExportPanel(props: {
  idPrefix: string;
  onExport: (request: ExportRequest) => Promise<void>;
}) {
  const [draft, setDraft] = useState(emptyDraft);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    const request = exportRequest(draft);
    if (typeof request === "string") {
      setProblem(request);
      return;
    }
    setProblem(null);
    setBusy(true);
    try {
      await props.onExport(request);
      setDraft(emptyDraft());
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="panel">
      <ExportFields draft={draft} onChange={setDraft} idPrefix={props.idPrefix} />
      {problem && <p class="error">{problem}</p>}
      <button id={`${props.idPrefix}-submit`} class="primary" disabled={busy} onClick={submit}>
        Export PSKC
      </button>
    </div>
  );
}
