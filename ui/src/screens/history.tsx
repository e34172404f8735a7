// History: past batches, their tokens and keys (a secret only on an explicit request),
// the audit log's chain check, re-issue of one token, re-export.

import { useEffect, useState } from "preact/hooks";
import {
  type AuditEvent,
  type AuditReport,
  type BatchDetail,
  type BatchSummary,
  type CommandError,
  type ExportRequest,
  type ProgressEvent,
  type ProvisioningMode,
  api,
  asCommandError,
} from "../api";
import { ExportPanel } from "../components/export-form";
import { STAGE_LABEL } from "../run-state";
import { ExportList } from "./run";

const LOG_LIMIT = 200;

/** Key states a token can be re-issued from: it holds a key from this station. */
const ACTIVE = ["written", "verified", "exported"];

/** A log entry's details on one line: `key=value` pairs. */
export function detailText(detail: Record<string, unknown>): string {
  return Object.entries(detail ?? {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

export function History(props: {
  serverUrl: string | null;
  refreshKey: number;
  onError: (e: CommandError) => void;
}) {
  const { onError } = props;
  const [batches, setBatches] = useState<BatchSummary[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [detail, setDetail] = useState<BatchDetail | null>(null);
  const [audit, setAudit] = useState<AuditReport | null>(null);
  const [log, setLog] = useState<AuditEvent[]>([]);
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [reissuing, setReissuing] = useState<Record<string, ProgressEvent | null>>({});

  const loadBatches = () =>
    api.batches().then(setBatches, (e) => onError(asCommandError(e)));
  const loadDetail = (id: string) =>
    api.batch(id).then(setDetail, (e) => onError(asCommandError(e)));

  const loadLog = (id: string | null) =>
    api.auditLog(id === null ? null : Number(id), LOG_LIMIT).then(setLog, (e) => onError(asCommandError(e)));

  useEffect(() => {
    loadBatches();
  }, [props.refreshKey]);

  useEffect(() => {
    loadLog(selected);
  }, [selected, props.refreshKey]);

  const select = (id: string) => {
    setSelected(id);
    setSecrets({});
    setDetail(null);
    loadDetail(id);
  };

  const reveal = async (keyId: string) => {
    if (!window.confirm(`Show the secret of key ${keyId} on screen?`)) return;
    try {
      const hex = await api.revealSecret(keyId);
      setSecrets((s) => ({ ...s, [keyId]: hex }));
    } catch (e) {
      onError(asCommandError(e));
    }
  };

  const reissue = async (serial: string, kind: ProvisioningMode["kind"]) => {
    const mode: ProvisioningMode =
      kind === "local"
        ? { kind: "local" }
        : { kind: "central", server_url: props.serverUrl ?? "", auth_codes: [] };
    setReissuing((r) => ({ ...r, [serial]: null }));
    try {
      await api.reissue(serial, mode, null, (e) => setReissuing((r) => ({ ...r, [serial]: e })));
      await loadBatches();
      if (selected) await loadDetail(selected);
    } catch (e) {
      onError(asCommandError(e));
    } finally {
      setReissuing(({ [serial]: _, ...rest }) => rest);
    }
  };

  const reexport = async (request: ExportRequest) => {
    if (!selected) return;
    try {
      await api.exportBatch(selected, request);
      await loadDetail(selected);
    } catch (e) {
      onError(asCommandError(e));
    }
  };

  const verifyAudit = () => {
    loadLog(selected);
    return api.auditVerify().then(setAudit, (e) => onError(asCommandError(e)));
  };

  return (
    <section id="screen-history">
      <h2>History</h2>
      {batches === null ? (
        <p class="muted">Loading…</p>
      ) : batches.length === 0 ? (
        <p class="muted" id="no-batches">
          No batch yet.
        </p>
      ) : (
        <table id="batch-table">
          <thead>
            <tr>
              <th>#</th>
              <th>Name</th>
              <th>State</th>
              <th>Profile</th>
              <th>Keys from</th>
              <th>Tokens</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {batches.map((b) => (
              <tr
                key={b.id}
                data-batch={b.id}
                class={selected === String(b.id) ? "selected" : ""}
                onClick={() => select(String(b.id))}
                style={{ cursor: "pointer" }}
              >
                <td>{b.id}</td>
                <td>{b.name}</td>
                <td>{b.state}</td>
                <td>
                  {b.otp.toUpperCase()} {b.digits}
                  {b.period ? ` / ${b.period}s` : ""}
                  {b.hash && b.hash !== "sha1" ? ` ${b.hash.toUpperCase()}` : ""}
                </td>
                <td>{b.mode}</td>
                <td>
                  {b.verified}/{b.tokens} verified{b.failed > 0 ? `, ${b.failed} failed` : ""}
                </td>
                <td>{b.created_at.replace("T", " ").slice(0, 19)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      {detail && (
        <div id="batch-detail">
          <h3>
            Batch {detail.batch.name}: {detail.tokens.length} keys
          </h3>
          <table id="token-table">
            <thead>
              <tr>
                <th>Key id</th>
                <th>Token</th>
                <th>Serial</th>
                <th>Slot</th>
                <th>State</th>
                <th>Counter</th>
                <th>Secret</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {detail.tokens.map((t) => (
                <tr key={t.key_id} data-key={t.key_id}>
                  <td class="mono">{t.key_id}</td>
                  <td>{t.model}</td>
                  <td class="mono">{t.serial}</td>
                  <td>{t.slot}</td>
                  <td class={t.error ? "error" : ""}>
                    {t.state}
                    {t.verification ? ` (${t.verification})` : ""}
                    {t.error ? `: ${t.error}` : ""}
                  </td>
                  <td>{t.counter ?? (t.period ? `${t.period}s` : "")}</td>
                  <td>
                    {secrets[t.key_id] ? (
                      <span class="secret">{secrets[t.key_id]}</span>
                    ) : (
                      <button class="secondary reveal" onClick={() => reveal(t.key_id)}>
                        Reveal
                      </button>
                    )}
                  </td>
                  <td>
                    {t.serial in reissuing ? (
                      <span class="muted reissue-stage">
                        {reissuing[t.serial] ? STAGE_LABEL[reissuing[t.serial]!.stage] : "starting"}
                      </span>
                    ) : (
                      ACTIVE.includes(t.state) && (
                        <button
                          class="secondary reissue"
                          onClick={() => reissue(t.serial, props.serverUrl ? "central" : "local")}
                        >
                          Re-issue
                        </button>
                      )
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Exports</h3>
          <ExportList exports={detail.batch.exports} />
          <ExportPanel idPrefix="history-export" onExport={reexport} />
        </div>
      )}

      <h3>Audit log</h3>
      <div class="row">
        <button id="verify-audit" class="secondary" onClick={verifyAudit}>
          Check the hash chain
        </button>
        {audit &&
          (audit.ok ? (
            <span class="ok" id="audit-result">
              Chain intact: {audit.events} events
            </span>
          ) : (
            <span class="error" id="audit-result">
              Chain broken at {audit.first_broken} ({audit.events} events)
            </span>
          ))}
      </div>
      <p class="muted">
        {selected === null ? "Latest events of the station" : `Events of batch ${selected}`},
        newest first
      </p>
      <table id="audit-table">
        <thead>
          <tr>
            <th>#</th>
            <th>When</th>
            <th>Event</th>
            <th>Token</th>
            <th>Key</th>
            <th>Details</th>
            <th>Link</th>
          </tr>
        </thead>
        <tbody>
          {log.map((e) => (
            <tr key={e.id} data-seq={e.id}>
              <td>{e.id}</td>
              <td>{e.time.replace("T", " ").slice(0, 19)}</td>
              <td class="mono">{e.kind}</td>
              <td class="mono">{e.serial ?? ""}</td>
              <td>{e.key ?? ""}</td>
              <td class="mono muted">{detailText(e.detail)}</td>
              <td class="mono muted">{e.hash_prefix}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
