// Run: one row per token with its stage, errors with a retry, the batch progress bar,
// cancel, and the export once the batch is through.

import type { ExportRecord, ExportRequest } from "../api";
import { ExportPanel } from "../components/export-form";
import { type RunState, STAGE_LABEL } from "../run-state";

export function Run(props: {
  run: RunState | null;
  exports: ExportRecord[];
  onCancel: () => void;
  onResume: () => void;
  onExport: (request: ExportRequest) => Promise<void>;
}) {
  const { run } = props;
  if (run === null) {
    return (
      <section id="screen-run">
        <h2>Run</h2>
        <p class="muted" id="no-run">
          No batch has run in this session. Start one from New batch.
        </p>
      </section>
    );
  }
  const percent = run.total > 0 ? Math.round((100 * run.finished) / run.total) : 0;
  const running = run.status === "running";
  const failed = run.rows.filter((r) => r.stage === "failed").length;
  return (
    <section id="screen-run">
      <h2>
        Run: {run.request.name}{" "}
        <span class="muted">
          ({run.request.otp.toUpperCase()}, {run.request.digits} digits,{" "}
          {run.request.mode.kind === "local" ? "local keys" : run.request.mode.server_url})
        </span>
      </h2>
      <div
        class="progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={run.total}
        aria-valuenow={run.finished}
      >
        <div id="run-progress" style={{ width: `${percent}%` }} />
      </div>
      <div class="row">
        <span id="run-status" data-status={run.status}>
          {statusText(run)} · {run.finished} of {run.total} tokens
          {failed > 0 && `, ${failed} failed`}
        </span>
        {running && (
          <button id="cancel-run" class="danger" disabled={run.cancelling} onClick={props.onCancel}>
            {run.cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
        {(run.status === "failed" || run.status === "cancelled") && (
          <button id="resume-run" class="secondary" onClick={props.onResume}>
            {run.status === "failed" ? "Retry failed tokens" : "Resume batch"}
          </button>
        )}
      </div>
      {run.error && (
        <p class="error" id="run-error">
          {run.error.message}
        </p>
      )}
      <table id="run-table">
        <thead>
          <tr>
            <th>Token</th>
            <th>Serial</th>
            <th>Stage</th>
            <th>Attempt</th>
            <th>Details</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {run.rows.map((r) => (
            <tr key={r.serial} data-serial={r.serial} data-stage={r.stage}>
              <td>{r.family}</td>
              <td class="mono">{r.serial}</td>
              <td>
                <span class={`stage stage-${r.stage}`}>{STAGE_LABEL[r.stage]}</span>
              </td>
              <td>{r.attempt}</td>
              <td class={r.stage === "failed" ? "error" : "muted"}>{r.message ?? ""}</td>
              <td>{r.retrying && <span class="muted">retrying</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!running && run.batchId !== null && run.status !== "error" && (
        <>
          <h3>Export this batch</h3>
          <ExportPanel idPrefix="run-export" onExport={props.onExport} />
          <ExportList exports={props.exports} />
        </>
      )}
    </section>
  );
}

export function ExportList(props: { exports: ExportRecord[] }) {
  if (props.exports.length === 0) return null;
  return (
    <table class="exports">
      <thead>
        <tr>
          <th>Exported file</th>
          <th>Protection</th>
          <th>Keys</th>
          <th>SHA-256</th>
        </tr>
      </thead>
      <tbody>
        {props.exports.map((x) => (
          <tr key={x.path + x.created_at}>
            <td class="mono export-path">
              {x.path}
              {(x.renamed_serials ?? []).map((r) => (
                <div class="renamed" key={r.device}>
                  serial {r.device} is {r.written} in this file
                </div>
              ))}
            </td>
            <td>
              {x.protection} / {x.target}
            </td>
            <td>{x.keys}</td>
            <td class="mono">{x.sha256.slice(0, 16)}…</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function statusText(run: RunState): string {
  switch (run.status) {
    case "running":
      return run.cancelling ? "Cancelling" : "Running";
    case "completed":
      return "Completed";
    case "failed":
      return "Finished with failures";
    case "cancelled":
      return "Cancelled";
    case "error":
      return "Stopped by an error";
  }
}
