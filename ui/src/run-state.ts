// The Run screen's model: one row per token, updated from the engine's progress stream.
// Pure functions, so the transitions are tested without a DOM.

import type { BatchRequest, BatchSummary, CommandError, ProgressEvent, Stage } from "./api";

export interface RunRow {
  serial: string;
  family: string;
  stage: Stage;
  attempt: number;
  message: string | null;
  /** A retry of this row is in flight. */
  retrying: boolean;
}

export type RunStatus = "running" | "completed" | "failed" | "cancelled" | "error";

export interface RunState {
  request: BatchRequest;
  status: RunStatus;
  cancelling: boolean;
  rows: RunRow[];
  finished: number;
  total: number;
  batchId: number | null;
  summary: BatchSummary | null;
  error: CommandError | null;
}

export function startRun(request: BatchRequest): RunState {
  return {
    request,
    status: "running",
    cancelling: false,
    rows: [],
    finished: 0,
    total: request.count ?? 0,
    batchId: null,
    summary: null,
    error: null,
  };
}

/** Folds one progress event into the state: the row of its serial takes the new stage. */
export function applyProgress(run: RunState, e: ProgressEvent): RunState {
  const row: RunRow = {
    serial: e.serial,
    family: e.family,
    stage: e.stage,
    attempt: e.attempt,
    message: e.message,
    retrying: false,
  };
  const at = run.rows.findIndex((r) => r.serial === e.serial);
  const rows = at < 0 ? [...run.rows, row] : run.rows.map((r, i) => (i === at ? row : r));
  return {
    ...run,
    rows,
    batchId: run.batchId ?? e.batch_id,
    // A resumed batch may count from zero again; the rows know what is really finished.
    finished: Math.max(e.finished, countFinished(rows)),
    total: Math.max(run.total, e.total, rows.length),
  };
}

/**
 * Runs the batch again: the engine resumes it, leaving verified tokens alone and
 * provisioning the failed (or, after a cancel, the unfinished) ones.
 */
export function resumeRun(run: RunState): RunState {
  const rows = run.rows.map((r) => (r.stage === "done" ? r : { ...r, retrying: true }));
  return {
    ...run,
    rows,
    status: "running",
    cancelling: false,
    error: null,
    finished: countFinished(rows.filter((r) => !r.retrying)),
  };
}

/** The batch call returned. */
export function finishRun(run: RunState, summary: BatchSummary): RunState {
  const status: RunStatus =
    summary.state === "cancelled" ? "cancelled" : summary.failed > 0 ? "failed" : "completed";
  return { ...run, status, summary, batchId: summary.id, cancelling: false };
}

/** The batch call failed as a whole. */
export function failRun(run: RunState, error: CommandError): RunState {
  const status: RunStatus = error.code === "cancelled" ? "cancelled" : "error";
  return { ...run, status, error, cancelling: false };
}

function countFinished(rows: RunRow[]): number {
  return rows.filter((r) => r.stage === "done" || r.stage === "failed").length;
}

export const STAGE_LABEL: Record<Stage, string> = {
  queued: "queued",
  dskpp: "DSKPP",
  writing: "writing",
  verifying: "verifying",
  done: "verified",
  failed: "failed",
};
