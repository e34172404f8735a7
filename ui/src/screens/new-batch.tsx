// New batch: profile (HOTP/TOTP, digits, hash, period), where keys come from (local DSKPP server
// or a central one with authentication codes), export protection, and how many tokens.

import { useState } from "preact/hooks";
import type { BatchRequest, OtpHash, OtpKind } from "../api";
import { ExportFields, emptyDraft, exportRequest } from "../components/export-form";

interface Form {
  name: string;
  otp: OtpKind;
  digits: number;
  period: number;
  hash: OtpHash;
  mode: "local" | "central";
  serverUrl: string;
  authCodes: string;
  count: string;
  operator: string;
  exportOnFinish: boolean;
}

/** Builds the engine's request from the form, or says what is missing. */
export function batchRequest(
  f: Form,
  exportDraft: ReturnType<typeof emptyDraft>,
): BatchRequest | string {
  if (!f.name.trim()) return "name the batch";
  if (f.digits < 6 || f.digits > 8) return "digits must be 6, 7 or 8";
  if (f.otp === "totp" && (f.period < 10 || f.period > 300))
    return "the TOTP period must be 10 to 300 seconds";
  const count = f.count.trim() === "" ? null : Number(f.count);
  if (count !== null && (!Number.isInteger(count) || count < 1))
    return "count must be a positive whole number (or empty for all attached tokens)";
  let mode: BatchRequest["mode"] = { kind: "local" };
  if (f.mode === "central") {
    if (!/^https?:\/\//.test(f.serverUrl.trim())) return "the server URL must start with https://";
    const auth_codes = f.authCodes.split(/[\s,]+/).filter((c) => c.length > 0);
    mode = { kind: "central", server_url: f.serverUrl.trim(), auth_codes };
  }
  let exportTo: BatchRequest["export"] = null;
  if (f.exportOnFinish) {
    const req = exportRequest(exportDraft);
    if (typeof req === "string") return req;
    exportTo = req;
  }
  return {
    name: f.name.trim(),
    otp: f.otp,
    digits: f.digits,
    period: f.period,
    count,
    mode,
    export: exportTo,
    operator: f.operator.trim() || null,
    hash: f.hash,
  };
}

function defaultName(): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  return `batch-${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(
    now.getHours(),
  )}${pad(now.getMinutes())}`;
}

export function NewBatch(props: {
  deviceCount: number;
  serverUrl: string | null;
  running: boolean;
  onStart: (request: BatchRequest) => void;
}) {
  const [form, setForm] = useState<Form>(() => ({
    name: defaultName(),
    otp: "hotp",
    digits: 6,
    period: 30,
    hash: "sha1",
    mode: "local",
    serverUrl: props.serverUrl ?? "",
    authCodes: "",
    count: "",
    operator: "",
    exportOnFinish: false,
  }));
  const [draft, setDraft] = useState(emptyDraft);
  const [problem, setProblem] = useState<string | null>(null);
  const set = (patch: Partial<Form>) => setForm({ ...form, ...patch });
  const text = (e: Event) => (e.currentTarget as HTMLInputElement).value;

  const start = () => {
    const request = batchRequest(form, draft);
    if (typeof request === "string") {
      setProblem(request);
      return;
    }
    setProblem(null);
    props.onStart(request);
  };

  return (
    <section id="screen-new-batch">
      <h2>New batch</h2>
      <fieldset>
        <legend>Profile</legend>
        <div class="row">
          <label>
            Batch name
            <input id="batch-name" value={form.name} onInput={(e) => set({ name: text(e) })} />
          </label>
          <label>
            Algorithm
            <select
              id="batch-otp"
              value={form.otp}
              onChange={(e) => set({ otp: text(e) as OtpKind })}
            >
              <option value="hotp">HOTP (counter)</option>
              <option value="totp">TOTP (time)</option>
            </select>
          </label>
          <label>
            Digits
            <select
              id="batch-digits"
              value={String(form.digits)}
              onChange={(e) => set({ digits: Number(text(e)) })}
            >
              <option value="6">6</option>
              <option value="7">7</option>
              <option value="8">8</option>
            </select>
          </label>
          <label>
            Hash
            <select
              id="batch-hash"
              value={form.hash}
              onChange={(e) => set({ hash: text(e) as OtpHash })}
            >
              <option value="sha1">SHA-1</option>
              <option value="sha256">SHA-256</option>
            </select>
          </label>
          {form.otp === "totp" && (
            <label>
              Period (s)
              <input
                id="batch-period"
                type="number"
                value={form.period}
                onInput={(e) => set({ period: Number(text(e)) })}
              />
            </label>
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Keys from</legend>
        <div class="row">
          <label class="inline">
            <input
              type="radio"
              name="mode"
              id="mode-local"
              checked={form.mode === "local"}
              onChange={() => set({ mode: "local" })}
            />
            this station (local DSKPP server)
          </label>
          <label class="inline">
            <input
              type="radio"
              name="mode"
              id="mode-central"
              checked={form.mode === "central"}
              onChange={() => set({ mode: "central" })}
            />
            a central server
          </label>
        </div>
        {form.mode === "central" && (
          <div class="row">
            <label>
              Server URL
              <input
                id="server-url"
                class="wide"
                value={form.serverUrl}
                onInput={(e) => set({ serverUrl: text(e) })}
              />
            </label>
            <label>
              Authentication codes (one per token)
              <textarea
                id="auth-codes"
                class="wide mono"
                rows={3}
                value={form.authCodes}
                onInput={(e) => set({ authCodes: (e.currentTarget as HTMLTextAreaElement).value })}
              />
            </label>
          </div>
        )}
      </fieldset>
      <fieldset>
        <legend>Export</legend>
        <label class="inline">
          <input
            id="export-on-finish"
            type="checkbox"
            checked={form.exportOnFinish}
            onChange={(e) =>
              set({ exportOnFinish: (e.currentTarget as HTMLInputElement).checked })
            }
          />
          write a PSKC file when the batch ends (you can also export later)
        </label>
        {form.exportOnFinish && <ExportFields draft={draft} onChange={setDraft} idPrefix="nb" />}
      </fieldset>
      <fieldset>
        <legend>Tokens</legend>
        <div class="row">
          <label>
            Count (empty: all {props.deviceCount} attached)
            <input
              id="batch-count"
              type="number"
              min={1}
              value={form.count}
              onInput={(e) => set({ count: text(e) })}
            />
          </label>
          <label>
            Operator
            <input
              id="batch-operator"
              value={form.operator}
              onInput={(e) => set({ operator: text(e) })}
            />
          </label>
        </div>
      </fieldset>
      {problem && (
        <p class="error" id="batch-problem">
          {problem}
        </p>
      )}
      <button
        id="start-batch"
        class="primary"
        disabled={props.running || props.deviceCount === 0}
        onClick={start}
      >
        Start batch
      </button>
      {props.deviceCount === 0 && <span class="muted"> attach tokens first</span>}
      {props.running && <span class="muted"> a batch is running</span>}
    </section>
  );
}
