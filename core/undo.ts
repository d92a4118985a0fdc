/** A stack of undo steps: ADD pushes one per thing it makes and runs them all if it fails. */
import { log } from './log.js';

export class UndoStack {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];

  push(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /** Runs every step in reverse order; a failing step is logged and the rest still run. */
  async unwind(): Promise<void> {
    for (const step of this.steps.reverse()) {
      try {
        await step.fn();
      } catch (err) {
        log.warn({ err, step: step.what }, 'failed to undo a step of a failed ADD');
      }
    }
    this.steps.length = 0;
  }
}
