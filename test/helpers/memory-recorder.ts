import { randomUUID } from 'node:crypto';
import type { FlowRecorder } from '../../src/proxy/index.js';
import { until } from './wait.js';

type Conn = Parameters<FlowRecorder['addConnection']>[0] &
  Parameters<FlowRecorder['updateConnection']>[1] & { id: string };
type Req = Parameters<FlowRecorder['addRequest']>[0] &
  Partial<Parameters<FlowRecorder['completeRequest']>[1]> & { id: string };
type Vio = Parameters<FlowRecorder['addViolation']>[0] & { id: string };

/**
 * An in-memory FlowRecorder for proxy tests that look at what the proxy decided, not at SQLite
 * (the store has its own tests, and the end-to-end tests use the real store).
 */
export class MemoryRecorder implements FlowRecorder {
  healthy = true;
  failWrites = false;
  connections: Conn[] = [];
  requests: Req[] = [];
  violations: Vio[] = [];

  async flush(): Promise<void> {
    if (this.failWrites)
      throw Object.assign(new Error('disk full'), { code: 'TR_STORE_UNAVAILABLE' });
  }
  addConnection(c: Parameters<FlowRecorder['addConnection']>[0]): string {
    const id = randomUUID();
    this.connections.push({ ...c, id });
    return id;
  }
  updateConnection(id: string, patch: Parameters<FlowRecorder['updateConnection']>[1]): void {
    const c = this.connections.find((x) => x.id === id);
    if (c) Object.assign(c, patch);
  }
  async addRequest(r: Parameters<FlowRecorder['addRequest']>[0]): Promise<string> {
    if (this.failWrites)
      throw Object.assign(new Error('disk full'), { code: 'TR_STORE_UNAVAILABLE' });
    const id = randomUUID();
    this.requests.push({ ...r, id });
    return id;
  }
  /** Body parts written while bodies streamed, by request id and field. */
  parts = new Map<string, Buffer[]>();
  addBodyPart(
    requestId: string,
    field: 'request_body' | 'response_body',
    seq: number,
    data: Buffer,
  ): void {
    const key = `${requestId} ${field}`;
    const list = this.parts.get(key) ?? [];
    if (seq !== list.length) throw new Error(`part ${seq} of ${key} out of order`);
    list.push(Buffer.from(data)); // the proxy reuses the buffer
    this.parts.set(key, list);
  }
  /** Records the completion with each body joined from its parts (what a reader of the store sees). */
  completeRequest(id: string, done: Parameters<FlowRecorder['completeRequest']>[1]): void {
    const r = this.requests.find((x) => x.id === id);
    if (!r) return;
    const joined = (field: 'request_body' | 'response_body', body: typeof done.requestBody) => {
      if (!body) return body;
      const parts = this.parts.get(`${id} ${field}`) ?? [];
      if (parts.length !== body.parts) {
        throw new Error(
          `${field} of ${id}: ${body.parts} parts announced, ${parts.length} written`,
        );
      }
      return { ...body, data: Buffer.concat([...parts, body.data]) };
    };
    Object.assign(r, {
      ...done,
      requestBody: joined('request_body', done.requestBody),
      responseBody: joined('response_body', done.responseBody),
    });
  }
  addViolation(v: Parameters<FlowRecorder['addViolation']>[0]): string {
    const id = randomUUID();
    this.violations.push({ ...v, id });
    return id;
  }
  /** Waits until `predicate` holds (records are completed asynchronously after the response). */
  until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
    return until(predicate, 'the recorder', timeoutMs);
  }
}
