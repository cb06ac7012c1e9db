/**
 * One cap on the bytes waiting to be sent to all websocket clients together. A client that does not read
 * its messages makes them pile up in this process (after the kernel's socket buffers are full); one slow
 * client is dropped by its own cap (connection.ts), and this cap keeps many of them from adding up: when a
 * message would take the total over it, the clients with the most unsent bytes are dropped (they can attach
 * again) until it fits.
 */
import type { WebSocket } from 'ws';

export class Outbox {
  private readonly sockets = new Set<WebSocket>();

  constructor(
    readonly maxBytes: number,
    private readonly log: (line: string) => void,
  ) {}

  add(ws: WebSocket): void {
    this.sockets.add(ws);
  }

  delete(ws: WebSocket): void {
    this.sockets.delete(ws);
  }

  /** Bytes waiting for every client now. */
  total(): number {
    let sum = 0;
    for (const ws of this.sockets) sum += ws.bufferedAmount;
    return sum;
  }

  /** Makes room for `bytes` more (dropping the worst readers); false when `ws` itself was dropped. */
  makeRoom(ws: WebSocket, bytes: number): boolean {
    let total = this.total();
    while (total + bytes > this.maxBytes) {
      let worst: WebSocket | null = null;
      for (const s of this.sockets) if (!worst || s.bufferedAmount > worst.bufferedAmount) worst = s;
      if (!worst || worst.bufferedAmount === 0) return true; // one message larger than the cap still goes
      this.log(
        `dropping a client with ${worst.bufferedAmount} bytes unread: all clients together may hold ${this.maxBytes}`,
      );
      total -= worst.bufferedAmount;
      this.sockets.delete(worst);
      worst.terminate();
      if (worst === ws) return false;
    }
    return true;
  }
}
