// NANO runtime glue: WHATWG streams (ReadableStream incl. byte streams and BYOB readers,
// WritableStream, TransformStream, their readers, writers and controllers, tee,
// pipeTo/pipeThrough, async iteration) and the text encoding streams. A compact implementation of
// the standard: queues with a high-water mark, pull on demand, errors and cancellation propagating
// both ways; byte streams queue copies of their chunks, which BYOB reads copy out again.
// (Part of the runtime's bootstrap function: see head.js.)
  // ---- streams, made on first use ---------------------------------------------------------------
  // A context makes its stream classes the first time it reads one of their globals or needs a
  // stream itself (a body's stream): until then a reset-on request does not deserialise them with
  // its context. An app whose source names one gets them in its snapshot (lazyGlobal).
  let streams = null;
  const streamsApi = () => (streams ??= makeStreams());
  // Whether `value` is one of this context's ReadableStreams (none exists before they are made).
  const isReadableStream = (value) => streams !== null && value instanceof streams.ReadableStream;
  lazyGlobal(["ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamDefaultController",
    "ReadableStreamBYOBReader", "ReadableByteStreamController", "ReadableStreamBYOBRequest", "WritableStream",
    "WritableStreamDefaultWriter", "WritableStreamDefaultController", "TransformStream",
    "TransformStreamDefaultController", "TextEncoderStream", "TextDecoderStream", "IdentityTransformStream",
    "FixedLengthStream"], streamsApi);
  function makeStreams() {
    const deferred = () => {
      let resolve, reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      promise.catch(() => {});
      return { promise, resolve, reject };
    };
    const sizeOf = (strategy) => (typeof strategy?.size === "function" ? strategy.size : () => 1);
    const hwm = (strategy, fallback) => {
      const value = strategy?.highWaterMark === undefined ? fallback : Number(strategy.highWaterMark);
      if (Number.isNaN(value) || value < 0) throw new RangeError("highWaterMark must be a non-negative number");
      return value;
    };

    // A byte stream of one chunk (readable with a BYOB reader too; enqueue copies the bytes): a
    // body's or a Blob's. Here, not beside streamsApi, so a context does not hold it until then.
    const bytesStream = (bytes) => new ReadableStream({
      type: "bytes",
      start(controller) {
        if (bytes.byteLength > 0) controller.enqueue(bytes);
        controller.close();
      },
    });

    // ---- ReadableStream ---------------------------------------------------------------------------
    // A stream's, a reader's and a writer's state live in internal objects that their public
    // object holds in a private field, as a standard implementation keeps them in internal
    // slots: the public objects have no own properties (`Object.keys`, `JSON.stringify` and
    // `console.log` see what they see on workerd), and an app cannot reach the queue.
    class ReadableStreamDefaultController {
      #stream;
      constructor(stream) { this.#stream = stream; }
      get desiredSize() { return this.#stream.desiredSize(); }
      enqueue(chunk) { this.#stream.enqueue(chunk); }
      close() { this.#stream.requestClose(); }
      error(reason) { this.#stream.error(reason); }
    }
    class ReadableByteStreamController extends ReadableStreamDefaultController {
      #stream;
      constructor(stream) { super(stream); this.#stream = stream; }
      get byobRequest() { return this.#stream.byobRequest(); }
    }

    // A ReadableStream's internal slots and the standard's abstract operations on them.
    class Readable {
      state = "readable"; queue = []; queueSize = 0; reader = null; storedError = undefined;
      pulling = false; pullAgain = false; started = false; closeRequested = false; disturbed = false;
      cancelledBranch = false; expectedLength = undefined;
      constructor(source, strategy) {
        this.source = source ?? {};
        // A byte stream (type: "bytes") queues bytes: its chunks are copied into Uint8Arrays,
        // counted by length, and a BYOB reader can read them into its own buffers.
        this.bytes = this.source.type === "bytes";
        if (this.source.type !== undefined && !this.bytes) {
          throw new TypeError(`ReadableStream: type must be "bytes" or left out, not ${JSON.stringify(this.source.type)}`);
        }
        this.hwm = hwm(strategy, this.bytes ? 0 : 1);
        this.size = this.bytes ? (chunk) => chunk.byteLength : sizeOf(strategy);
        this.byob = null;
        this.controller = this.bytes ? new ReadableByteStreamController(this) : new ReadableStreamDefaultController(this);
        Promise.resolve()
          .then(() => this.source.start?.(this.controller))
          .then(() => { this.started = true; this.maybePull(); }, (e) => this.error(e));
      }
      desiredSize() {
        if (this.state === "errored") return null;
        if (this.state === "closed") return 0;
        return this.hwm - this.queueSize;
      }
      enqueue(chunk) {
        if (this.state !== "readable" || this.closeRequested) throw new TypeError("ReadableStream: cannot enqueue into a closed or errored stream");
        const reader = this.reader;
        if (this.bytes) {
          if (!ArrayBuffer.isView(chunk)) throw new TypeError("ReadableByteStreamController.enqueue: a chunk must be an ArrayBufferView");
          if (chunk.byteLength === 0) throw new TypeError("ReadableByteStreamController.enqueue: a chunk must not be empty");
          chunk = new Uint8Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
          this.byob = null;
          if (reader?.byob) {
            this.queue.push(chunk);
            this.queueSize += chunk.byteLength;
            while (reader.requests.length > 0 && this.fillRequest(reader.requests[0])) reader.requests.shift();
            this.maybePull();
            return;
          }
        }
        if (reader && reader.requests.length > 0) {
          reader.requests.shift().resolve({ value: chunk, done: false });
        } else {
          this.queue.push(chunk);
          this.queueSize += this.size(chunk);
        }
        this.maybePull();
      }
      requestClose() {
        if (this.state !== "readable" || this.closeRequested) throw new TypeError("ReadableStream: already closed");
        this.closeRequested = true;
        if (this.queue.length === 0) this.close();
      }
      close() {
        this.state = "closed";
        this.byob = null;
        const reader = this.reader;
        if (reader) {
          for (const request of reader.requests.splice(0)) {
            request.resolve({ value: request.view ? viewOf(request.view, 0) : undefined, done: true });
          }
          reader.closed.resolve();
        }
      }
      error(reason) {
        if (this.state !== "readable") return;
        this.state = "errored";
        this.storedError = reason;
        this.queue = [];
        this.queueSize = 0;
        const reader = this.reader;
        if (reader) {
          for (const request of reader.requests.splice(0)) request.reject(reason);
          reader.closed.reject(reason);
        }
      }
      maybePull() {
        if (!this.started || this.state !== "readable" || this.closeRequested) return;
        const wanted = (this.reader && this.reader.requests.length > 0) || this.desiredSize() > 0;
        if (!wanted || typeof this.source.pull !== "function") return;
        if (this.pulling) { this.pullAgain = true; return; }
        this.pulling = true;
        Promise.resolve()
          .then(() => this.source.pull(this.controller))
          .then(() => {
            this.pulling = false;
            if (this.pullAgain) { this.pullAgain = false; this.maybePull(); }
          }, (e) => this.error(e));
      }
      // After a read took from the queue: close once a requested close has drained it, else refill.
      afterTake() {
        if (this.closeRequested && this.queue.length === 0) this.close();
        else this.maybePull();
      }
      // A read the queue cannot serve yet (`view`: a BYOB read's buffer).
      pendingRead(view) {
        const request = deferred();
        if (view) request.view = view;
        this.reader.requests.push(request);
        this.maybePull();
        return request.promise;
      }
      read() {
        this.disturbed = true;
        if (this.queue.length > 0) {
          const chunk = this.queue.shift();
          this.queueSize -= this.size(chunk);
          this.afterTake();
          return Promise.resolve({ value: chunk, done: false });
        }
        if (this.state === "closed") return Promise.resolve({ value: undefined, done: true });
        if (this.state === "errored") return Promise.reject(this.storedError);
        return this.pendingRead();
      }
      // BYOB: copies queued bytes into `view` (whole elements only); answers how many.
      takeInto(view) {
        const unit = view.BYTES_PER_ELEMENT ?? 1;
        const want = Math.min(view.byteLength, this.queueSize);
        const total = want - (want % unit);
        const target = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        let filled = 0;
        while (filled < total) {
          const head = this.queue[0];
          const n = Math.min(head.byteLength, total - filled);
          target.set(head.subarray(0, n), filled);
          filled += n;
          if (n === head.byteLength) this.queue.shift();
          else this.queue[0] = head.subarray(n);
        }
        this.queueSize -= filled;
        return filled;
      }
      // Settles a pending BYOB read from the queue if it can; answers whether it did.
      fillRequest(request) {
        const filled = this.takeInto(request.view);
        if (filled === 0) return false;
        request.resolve({ value: viewOf(request.view, filled), done: false });
        if (this.closeRequested && this.queue.length === 0) this.close();
        return true;
      }
      readInto(view) {
        this.disturbed = true;
        if (this.state === "errored") return Promise.reject(this.storedError);
        const filled = this.takeInto(view);
        if (filled > 0) {
          this.afterTake();
          return Promise.resolve({ value: viewOf(view, filled), done: false });
        }
        if (this.state === "closed") return Promise.resolve({ value: viewOf(view, 0), done: true });
        return this.pendingRead(view);
      }
      // The controller's byobRequest: the first pending read's buffer (a BYOB reader's own, or
      // one of autoAllocateChunkSize bytes for a default reader), while the queue cannot serve it.
      byobRequest() {
        if (this.byob) return this.byob;
        const request = this.reader?.requests[0];
        if (!request || this.queue.length > 0 || this.state !== "readable") return null;
        let view = request.view;
        const auto = Number(this.source.autoAllocateChunkSize);
        if (!view && auto > 0) view = new Uint8Array(auto);
        if (!view) return null;
        const respond = (bytes) => {
          if (this.byob !== byob) throw new TypeError("ReadableStreamBYOBRequest: already responded");
          if (!(bytes >= 0 && bytes <= view.byteLength)) throw new RangeError(`ReadableStreamBYOBRequest.respond: ${bytes} bytes do not fit the ${view.byteLength}-byte view`);
          this.byob = null;
          if (bytes === 0) return;
          this.reader.requests.shift().resolve({ value: request.view ? viewOf(request.view, bytes) : view.subarray(0, bytes), done: false });
          this.maybePull();
        };
        const byob = new ReadableStreamBYOBRequest(kByob, new Uint8Array(view.buffer, view.byteOffset, view.byteLength), respond);
        this.byob = byob;
        return byob;
      }
      async cancel(reason) {
        this.disturbed = true;
        if (this.state === "closed") return;
        if (this.state === "errored") throw this.storedError;
        this.queue = [];
        this.queueSize = 0;
        this.close();
        await this.source.cancel?.(reason);
      }
    }

    // The internal state of `stream` (a TypeError for anything else, as a brand check).
    let readable;
    class ReadableStream {
      #state;
      constructor(source = {}, strategy = {}) { this.#state = new Readable(source, strategy); }
      static {
        readable = (stream) => stream.#state;
      }
      static from(iterable) {
        const iterator = (iterable[Symbol.asyncIterator] ?? iterable[Symbol.iterator]).call(iterable);
        return new ReadableStream({
          async pull(controller) {
            const { value, done } = await iterator.next();
            if (done) controller.close();
            else controller.enqueue(value);
          },
          async cancel(reason) { await iterator.return?.(reason); },
        }, { highWaterMark: 0 });
      }
      get locked() { return this.#state.reader !== null; }
      cancel(reason) {
        if (this.locked) return Promise.reject(new TypeError("ReadableStream.cancel: the stream is locked to a reader"));
        return this.#state.cancel(reason);
      }
      getReader(options = {}) {
        if (options?.mode === "byob") return new ReadableStreamBYOBReader(this);
        if (options?.mode !== undefined) throw new TypeError(`ReadableStream.getReader: mode must be "byob" or left out, not ${JSON.stringify(options.mode)}`);
        return new ReadableStreamDefaultReader(this);
      }
      tee() {
        const reader = this.getReader();
        let cancelled = 0;
        const branches = [];
        const pull = async () => {
          const { value, done } = await reader.read();
          for (const branch of branches) {
            if (branch.cancelledBranch) continue;
            if (done) branch.controller.close();
            else branch.controller.enqueue(value);
          }
        };
        const make = () => {
          let branch;
          const stream = new ReadableStream({
            pull,
            cancel(reason) {
              branch.cancelledBranch = true;
              if (++cancelled === 2) return reader.cancel(reason);
            },
          }, { highWaterMark: 0 });
          branch = stream.#state;
          branches.push(branch);
          return stream;
        };
        const streams = [make(), make()];
        reader.closed.catch((e) => branches.forEach((b) => b.error(e)));
        return streams;
      }
      async pipeTo(destination, options = {}) {
        if (this.locked) throw new TypeError("ReadableStream.pipeTo: the stream is locked");
        if (destination.locked) throw new TypeError("ReadableStream.pipeTo: the destination is locked");
        const reader = this.getReader();
        const writer = destination.getWriter();
        const signal = options.signal;
        try {
          for (;;) {
            signal?.throwIfAborted();
            const { value, done } = await reader.read();
            if (done) break;
            await writer.write(value);
          }
          if (!options.preventClose) await writer.close();
        } catch (err) {
          if (!options.preventAbort) await writer.abort(err).catch(() => {});
          if (!options.preventCancel) await reader.cancel(err).catch(() => {});
          throw err;
        } finally {
          reader.releaseLock();
          writer.releaseLock();
        }
      }
      pipeThrough(transform, options = {}) {
        this.pipeTo(transform.writable, options).catch(() => {});
        return transform.readable;
      }
      values(options = {}) {
        const reader = this.getReader();
        return {
          next: () => reader.read(),
          return: async (value) => {
            if (!options.preventCancel) await reader.cancel(value);
            reader.releaseLock();
            return { value, done: true };
          },
          [Symbol.asyncIterator]() { return this; },
        };
      }
      [Symbol.asyncIterator](options) { return this.values(options); }
    }

    // What both readers share: locking, closed, cancel, releaseLock. A reader's state: the
    // stream's (null once released), its pending reads, its closed promise, whether it is BYOB.
    let readerOf;
    class ReaderBase {
      #reader;
      constructor(stream, byob = false) {
        if (!(stream instanceof ReadableStream)) throw new TypeError(`${new.target.name}: expected a ReadableStream`);
        if (stream.locked) throw new TypeError("ReadableStream: the stream is already locked to a reader");
        const state = readable(stream);
        const reader = { stream: state, requests: [], closed: deferred(), byob };
        this.#reader = reader;
        state.reader = reader;
        if (state.state === "closed") reader.closed.resolve();
        if (state.state === "errored") reader.closed.reject(state.storedError);
      }
      static {
        readerOf = (reader) => reader.#reader;
      }
      get closed() { return this.#reader.closed.promise; }
      cancel(reason) {
        if (!this.#reader.stream) return Promise.reject(new TypeError("cancel: the reader was released"));
        return this.#reader.stream.cancel(reason);
      }
      releaseLock() {
        const reader = this.#reader;
        if (!reader.stream) return;
        for (const request of reader.requests.splice(0)) request.reject(new TypeError("the reader was released"));
        reader.stream.reader = null;
        reader.stream.byob = null;
        reader.stream = null;
      }
    }
    class ReadableStreamDefaultReader extends ReaderBase {
      read() {
        const stream = readerOf(this).stream;
        if (!stream) return Promise.reject(new TypeError("read: the reader was released"));
        return stream.read();
      }
    }
    class ReadableStreamBYOBReader extends ReaderBase {
      constructor(stream) {
        if (stream instanceof ReadableStream && !readable(stream).bytes) {
          throw new TypeError("ReadableStreamBYOBReader: the stream is not a byte stream (create it with type: \"bytes\")");
        }
        super(stream, true);
      }
      read(view) {
        const stream = readerOf(this).stream;
        if (!stream) return Promise.reject(new TypeError("read: the reader was released"));
        if (!ArrayBuffer.isView(view)) return Promise.reject(new TypeError("ReadableStreamBYOBReader.read: expected an ArrayBufferView"));
        if (view.byteLength === 0) return Promise.reject(new TypeError("ReadableStreamBYOBReader.read: the view is empty"));
        return stream.readInto(view);
      }
    }
    // A view of the same type over the first `bytes` bytes of `view`.
    const viewOf = (view, bytes) => (view instanceof DataView
      ? new DataView(view.buffer, view.byteOffset, bytes)
      : new view.constructor(view.buffer, view.byteOffset, bytes / (view.BYTES_PER_ELEMENT ?? 1)));
    const kByob = Symbol("nano.byobRequest");
    class ReadableStreamBYOBRequest {
      #view; #respond;
      constructor(key, view, respond) {
        if (key !== kByob) throw new TypeError("ReadableStreamBYOBRequest cannot be constructed");
        this.#view = view; this.#respond = respond;
      }
      get view() { return this.#view; }
      respond(bytesWritten) { this.#respond(Number(bytesWritten)); }
      respondWithNewView(view) {
        if (!ArrayBuffer.isView(view)) throw new TypeError("ReadableStreamBYOBRequest.respondWithNewView: expected an ArrayBufferView");
        if (view.byteLength > 0) new Uint8Array(this.#view.buffer, this.#view.byteOffset, view.byteLength).set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
        this.#respond(view.byteLength);
      }
    }

    // ---- WritableStream ---------------------------------------------------------------------------
    class WritableStreamDefaultController {
      #stream;
      constructor(stream) { this.#stream = stream; }
      error(reason) { this.#stream.error(reason); }
      get signal() { return this.#stream.abort.signal; }
    }

    // A WritableStream's internal slots: its writes run one after another on `chain`.
    class Writable {
      state = "writable"; writer = null; storedError = undefined; chain; pending = 0;
      constructor(sink, strategy) {
        this.sink = sink ?? {};
        this.hwm = hwm(strategy, 1);
        this.abort = new AbortController();
        this.controller = new WritableStreamDefaultController(this);
        this.chain = Promise.resolve().then(() => this.sink.start?.(this.controller));
        this.chain.catch((e) => this.error(e));
      }
      error(reason) {
        if (this.state === "errored") return;
        this.state = "errored";
        this.storedError = reason;
        this.writer?.closed.reject(reason);
      }
      enqueue(step) {
        this.pending++;
        const result = this.chain.then(() => {
          if (this.state === "errored") throw this.storedError;
          return step();
        });
        this.chain = result.then(() => { this.pending--; }, (e) => { this.pending--; this.error(e); });
        return result;
      }
      async abortNow(reason) {
        this.abort.abort(reason);
        this.error(reason);
        await this.sink.abort?.(reason);
      }
      closeNow() {
        if (this.state !== "writable") return Promise.reject(new TypeError("WritableStream: already closed or errored"));
        this.state = "closing";
        return this.enqueue(() => this.sink.close?.()).then(() => {
          this.state = "closed";
          this.writer?.closed.resolve();
        });
      }
    }

    // The internal state of `stream` (a TypeError for anything else, as a brand check).
    let writable;
    class WritableStream {
      #state;
      constructor(sink = {}, strategy = {}) { this.#state = new Writable(sink, strategy); }
      static {
        writable = (stream) => stream.#state;
      }
      get locked() { return this.#state.writer !== null; }
      getWriter() { return new WritableStreamDefaultWriter(this); }
      abort(reason) {
        if (this.locked) return Promise.reject(new TypeError("WritableStream.abort: the stream is locked"));
        return this.#state.abortNow(reason);
      }
      close() {
        if (this.locked) return Promise.reject(new TypeError("WritableStream.close: the stream is locked"));
        return this.#state.closeNow();
      }
    }

    // A writer's state: the stream's (null once released) and its closed promise.
    class WritableStreamDefaultWriter {
      #writer;
      constructor(stream) {
        if (!(stream instanceof WritableStream)) throw new TypeError("WritableStreamDefaultWriter: expected a WritableStream");
        if (stream.locked) throw new TypeError("WritableStream: the stream is already locked to a writer");
        const state = writable(stream);
        const writer = { stream: state, closed: deferred() };
        this.#writer = writer;
        state.writer = writer;
        if (state.state === "errored") writer.closed.reject(state.storedError);
      }
      get closed() { return this.#writer.closed.promise; }
      get ready() {
        const stream = this.#writer.stream;
        return stream ? stream.chain.then(() => undefined) : Promise.reject(new TypeError("released"));
      }
      get desiredSize() {
        const stream = this.#writer.stream;
        return stream ? stream.hwm - stream.pending : null;
      }
      write(chunk) {
        const stream = this.#writer.stream;
        if (!stream) return Promise.reject(new TypeError("write: the writer was released"));
        if (stream.state !== "writable") return Promise.reject(stream.storedError ?? new TypeError("write: the stream is closed"));
        return stream.enqueue(() => stream.sink.write?.(chunk, stream.controller));
      }
      close() { return this.#writer.stream ? this.#writer.stream.closeNow() : Promise.reject(new TypeError("released")); }
      abort(reason) { return this.#writer.stream ? this.#writer.stream.abortNow(reason) : Promise.reject(new TypeError("released")); }
      releaseLock() {
        const writer = this.#writer;
        if (!writer.stream) return;
        writer.stream.writer = null;
        writer.stream = null;
      }
    }

    // ---- TransformStream ----------------------------------------------------------------------------
    class TransformStreamDefaultController {
      #readable;
      constructor(readable) { this.#readable = readable; }
      get desiredSize() { return this.#readable.desiredSize(); }
      enqueue(chunk) { this.#readable.enqueue(chunk); }
      error(reason) { this.#readable.error(reason); }
      terminate() { this.#readable.requestClose(); }
    }

    // Passed by IdentityTransformStream as TransformStream's fourth argument: a byte readable.
    const BYTE_READABLE = {};
    class TransformStream {
      #readable; #writable;
      constructor(transformer = {}, writableStrategy = {}, readableStrategy = {}, kind = undefined) {
        // A readable cancelled errors the writable with the reason, as the standard's does.
        const source = { start: () => {}, cancel: (reason) => writable(this.#writable).error(reason) };
        if (kind === BYTE_READABLE) source.type = "bytes";
        this.#readable = new ReadableStream(source, readableStrategy ?? { highWaterMark: 0 });
        const output = readable(this.#readable);
        const controller = new TransformStreamDefaultController(output);
        const started = Promise.resolve().then(() => transformer?.start?.(controller));
        this.#writable = new WritableStream({
          start: () => started,
          write: (chunk) => (transformer?.transform ? transformer.transform(chunk, controller) : controller.enqueue(chunk)),
          close: async () => {
            await transformer?.flush?.(controller);
            if (output.state === "readable" && !output.closeRequested) output.requestClose();
          },
          abort: (reason) => output.error(reason),
        }, writableStrategy);
      }
      get readable() { return this.#readable; }
      get writable() { return this.#writable; }
    }

    // workerd's own: bytes written come out as they are (a string as its UTF-8), through a byte
    // readable (BYOB readers work). A write of anything else is refused, and the readable stays.
    // With `expected` (FixedLengthStream's), more bytes, or a close before all of them, error the
    // readable; the write or close itself succeeds, as on workerd.
    const identityTransformer = (expected) => {
      let seen = 0;
      return {
        transform(chunk, controller) {
          let bytes;
          if (typeof chunk === "string") bytes = utf8(chunk);
          else if (chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)) bytes = toBytes(chunk, "chunk");
          else {
            throw new TypeError("This TransformStream is being used as a byte stream, but received an object of " +
              "non-ArrayBuffer/ArrayBufferView type on its writable side.");
          }
          seen += bytes.byteLength;
          if (expected !== undefined && seen > expected) {
            controller.error(new TypeError("Attempt to write too many bytes through a FixedLengthStream."));
          } else if (bytes.byteLength > 0) {
            controller.enqueue(bytes);
          }
        },
        flush(controller) {
          if (expected !== undefined && seen < expected) {
            controller.error(new TypeError("FixedLengthStream did not see all expected bytes before close()."));
          }
        },
      };
    };
    // Passed by FixedLengthStream with its length, so no app can make an IdentityTransformStream
    // count.
    const FIXED_LENGTH = {};
    class IdentityTransformStream extends TransformStream {
      constructor(options = undefined, key = undefined, expected = undefined) {
        super(identityTransformer(key === FIXED_LENGTH ? expected : undefined), undefined, undefined, BYTE_READABLE);
      }
    }
    // An IdentityTransformStream that carries exactly `expectedLength` bytes: a response whose
    // body it is has that Content-Length.
    class FixedLengthStream extends IdentityTransformStream {
      constructor(expectedLength = undefined, options = undefined) {
        if (expectedLength === undefined) {
          throw new TypeError("Failed to construct 'FixedLengthStream': constructor parameter 1 is not of type 'bigint'.");
        }
        const length = typeof expectedLength === "bigint" ? Number(expectedLength) : Math.trunc(Number(expectedLength));
        if (Number.isNaN(length)) {
          throw new TypeError("Failed to construct 'FixedLengthStream': constructor parameter 1 is not of type 'bigint'.");
        }
        if (length < 0) {
          throw new TypeError("The value cannot be converted because it is negative and this API expects a positive bigint.");
        }
        if (length >= 2 ** 53) throw new TypeError("FixedLengthStream requires an integer expected length less than 2^53.");
        super(options, FIXED_LENGTH, length);
        readable(this.readable).expectedLength = length;
      }
    }

    class TextEncoderStream extends TransformStream {
      constructor() {
        const encoder = new (encodingApi().TextEncoder)();
        super({ transform(chunk, controller) { controller.enqueue(encoder.encode(String(chunk))); } });
      }
      get encoding() { return "utf-8"; }
    }

    // The decoder streams (every encoding TextDecoder knows): a character split across chunks
    // waits in the decoder for its rest.
    class TextDecoderStream extends TransformStream {
      #decoder;
      constructor(label = "utf-8", options = {}) {
        const decoder = new (encodingApi().TextDecoder)(label, options);
        super({
          transform(chunk, controller) {
            const text = decoder.decode(chunk, { stream: true });
            if (text) controller.enqueue(text);
          },
          flush(controller) {
            const text = decoder.decode();
            if (text) controller.enqueue(text);
          },
        });
        this.#decoder = decoder;
      }
      get encoding() { return this.#decoder.encoding; }
      get fatal() { return this.#decoder.fatal; }
      get ignoreBOM() { return this.#decoder.ignoreBOM; }
    }
    tagClasses(ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController, ReadableStreamBYOBReader,
      ReadableByteStreamController, ReadableStreamBYOBRequest, WritableStream, WritableStreamDefaultWriter,
      WritableStreamDefaultController, TransformStream, TransformStreamDefaultController, TextEncoderStream,
      TextDecoderStream, IdentityTransformStream, FixedLengthStream);
    return { ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController,
      ReadableStreamBYOBReader, ReadableByteStreamController, ReadableStreamBYOBRequest, WritableStream,
      WritableStreamDefaultWriter, WritableStreamDefaultController, TransformStream,
      TransformStreamDefaultController, TextEncoderStream, TextDecoderStream, IdentityTransformStream,
      FixedLengthStream, bytesStream,
      // The byte count a FixedLengthStream's readable promises (undefined for any other stream).
      expectedLength: (stream) => readable(stream).expectedLength,
      // Whether a stream has been read from or cancelled (a body that was is used).
      disturbed: (stream) => readable(stream).disturbed };
  }
