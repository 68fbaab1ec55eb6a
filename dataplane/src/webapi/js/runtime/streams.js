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
    "TransformStreamDefaultController", "TextEncoderStream", "TextDecoderStream"], streamsApi);
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
    class ReadableStreamDefaultController {
      #stream;
      constructor(stream) { this.#stream = stream; }
      get desiredSize() { return this.#stream._desiredSize(); }
      enqueue(chunk) { this.#stream._enqueue(chunk); }
      close() { this.#stream._requestClose(); }
      error(reason) { this.#stream._error(reason); }
    }
    class ReadableByteStreamController extends ReadableStreamDefaultController {
      #stream;
      constructor(stream) { super(stream); this.#stream = stream; }
      get byobRequest() { return this.#stream._byobRequest(); }
    }

    class ReadableStream {
      _state = "readable"; _queue = []; _queueSize = 0; _reader = null; _storedError = undefined;
      _pulling = false; _pullAgain = false; _started = false; _closeRequested = false; _disturbed = false;
      constructor(source = {}, strategy = {}) {
        this._source = source ?? {};
        // A byte stream (type: "bytes") queues bytes: its chunks are copied into Uint8Arrays,
        // counted by length, and a BYOB reader can read them into its own buffers.
        this._bytes = this._source.type === "bytes";
        if (this._source.type !== undefined && !this._bytes) {
          throw new TypeError(`ReadableStream: type must be "bytes" or left out, not ${JSON.stringify(this._source.type)}`);
        }
        this._hwm = hwm(strategy, this._bytes ? 0 : 1);
        this._size = this._bytes ? (chunk) => chunk.byteLength : sizeOf(strategy);
        this._byob = null;
        this._controller = this._bytes ? new ReadableByteStreamController(this) : new ReadableStreamDefaultController(this);
        Promise.resolve()
          .then(() => this._source.start?.(this._controller))
          .then(() => { this._started = true; this._maybePull(); }, (e) => this._error(e));
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
      get locked() { return this._reader !== null; }
      _desiredSize() {
        if (this._state === "errored") return null;
        if (this._state === "closed") return 0;
        return this._hwm - this._queueSize;
      }
      _enqueue(chunk) {
        if (this._state !== "readable" || this._closeRequested) throw new TypeError("ReadableStream: cannot enqueue into a closed or errored stream");
        const reader = this._reader;
        if (this._bytes) {
          if (!ArrayBuffer.isView(chunk)) throw new TypeError("ReadableByteStreamController.enqueue: a chunk must be an ArrayBufferView");
          if (chunk.byteLength === 0) throw new TypeError("ReadableByteStreamController.enqueue: a chunk must not be empty");
          chunk = new Uint8Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
          this._byob = null;
          if (reader instanceof ReadableStreamBYOBReader) {
            this._queue.push(chunk);
            this._queueSize += chunk.byteLength;
            while (reader._requests.length > 0 && this._fillRequest(reader._requests[0])) reader._requests.shift();
            this._maybePull();
            return;
          }
        }
        if (reader && reader._requests.length > 0) {
          reader._requests.shift().resolve({ value: chunk, done: false });
        } else {
          this._queue.push(chunk);
          this._queueSize += this._size(chunk);
        }
        this._maybePull();
      }
      _requestClose() {
        if (this._state !== "readable" || this._closeRequested) throw new TypeError("ReadableStream: already closed");
        this._closeRequested = true;
        if (this._queue.length === 0) this._close();
      }
      _close() {
        this._state = "closed";
        this._byob = null;
        const reader = this._reader;
        if (reader) {
          for (const request of reader._requests.splice(0)) {
            request.resolve({ value: request.view ? viewOf(request.view, 0) : undefined, done: true });
          }
          reader._closed.resolve();
        }
      }
      _error(reason) {
        if (this._state !== "readable") return;
        this._state = "errored";
        this._storedError = reason;
        this._queue = [];
        this._queueSize = 0;
        const reader = this._reader;
        if (reader) {
          for (const request of reader._requests.splice(0)) request.reject(reason);
          reader._closed.reject(reason);
        }
      }
      _maybePull() {
        if (!this._started || this._state !== "readable" || this._closeRequested) return;
        const wanted = (this._reader && this._reader._requests.length > 0) || this._desiredSize() > 0;
        if (!wanted || typeof this._source.pull !== "function") return;
        if (this._pulling) { this._pullAgain = true; return; }
        this._pulling = true;
        Promise.resolve()
          .then(() => this._source.pull(this._controller))
          .then(() => {
            this._pulling = false;
            if (this._pullAgain) { this._pullAgain = false; this._maybePull(); }
          }, (e) => this._error(e));
      }
      // After a read took from the queue: close once a requested close has drained it, else refill.
      _afterTake() {
        if (this._closeRequested && this._queue.length === 0) this._close();
        else this._maybePull();
      }
      // A read the queue cannot serve yet (`view`: a BYOB read's buffer).
      _pendingRead(view) {
        const request = deferred();
        if (view) request.view = view;
        this._reader._requests.push(request);
        this._maybePull();
        return request.promise;
      }
      _read() {
        this._disturbed = true;
        if (this._queue.length > 0) {
          const chunk = this._queue.shift();
          this._queueSize -= this._size(chunk);
          this._afterTake();
          return Promise.resolve({ value: chunk, done: false });
        }
        if (this._state === "closed") return Promise.resolve({ value: undefined, done: true });
        if (this._state === "errored") return Promise.reject(this._storedError);
        return this._pendingRead();
      }
      // BYOB: copies queued bytes into `view` (whole elements only); answers how many.
      _takeInto(view) {
        const unit = view.BYTES_PER_ELEMENT ?? 1;
        const want = Math.min(view.byteLength, this._queueSize);
        const total = want - (want % unit);
        const target = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
        let filled = 0;
        while (filled < total) {
          const head = this._queue[0];
          const n = Math.min(head.byteLength, total - filled);
          target.set(head.subarray(0, n), filled);
          filled += n;
          if (n === head.byteLength) this._queue.shift();
          else this._queue[0] = head.subarray(n);
        }
        this._queueSize -= filled;
        return filled;
      }
      // Settles a pending BYOB read from the queue if it can; answers whether it did.
      _fillRequest(request) {
        const filled = this._takeInto(request.view);
        if (filled === 0) return false;
        request.resolve({ value: viewOf(request.view, filled), done: false });
        if (this._closeRequested && this._queue.length === 0) this._close();
        return true;
      }
      _readInto(view) {
        this._disturbed = true;
        if (this._state === "errored") return Promise.reject(this._storedError);
        const filled = this._takeInto(view);
        if (filled > 0) {
          this._afterTake();
          return Promise.resolve({ value: viewOf(view, filled), done: false });
        }
        if (this._state === "closed") return Promise.resolve({ value: viewOf(view, 0), done: true });
        return this._pendingRead(view);
      }
      // The controller's byobRequest: the first pending read's buffer (a BYOB reader's own, or
      // one of autoAllocateChunkSize bytes for a default reader), while the queue cannot serve it.
      _byobRequest() {
        if (this._byob) return this._byob;
        const request = this._reader?._requests[0];
        if (!request || this._queue.length > 0 || this._state !== "readable") return null;
        let view = request.view;
        const auto = Number(this._source.autoAllocateChunkSize);
        if (!view && auto > 0) view = new Uint8Array(auto);
        if (!view) return null;
        const stream = this;
        const respond = (bytes) => {
          if (stream._byob !== byob) throw new TypeError("ReadableStreamBYOBRequest: already responded");
          if (!(bytes >= 0 && bytes <= view.byteLength)) throw new RangeError(`ReadableStreamBYOBRequest.respond: ${bytes} bytes do not fit the ${view.byteLength}-byte view`);
          stream._byob = null;
          if (bytes === 0) return;
          stream._reader._requests.shift().resolve({ value: request.view ? viewOf(request.view, bytes) : view.subarray(0, bytes), done: false });
          stream._maybePull();
        };
        const byob = new ReadableStreamBYOBRequest(kByob, new Uint8Array(view.buffer, view.byteOffset, view.byteLength), respond);
        this._byob = byob;
        return byob;
      }
      async _cancel(reason) {
        this._disturbed = true;
        if (this._state === "closed") return;
        if (this._state === "errored") throw this._storedError;
        this._queue = [];
        this._queueSize = 0;
        this._close();
        await this._source.cancel?.(reason);
      }
      cancel(reason) {
        if (this.locked) return Promise.reject(new TypeError("ReadableStream.cancel: the stream is locked to a reader"));
        return this._cancel(reason);
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
            if (branch._cancelledBranch) continue;
            if (done) branch._controller.close();
            else branch._controller.enqueue(value);
          }
        };
        const make = () => {
          const branch = new ReadableStream({
            pull,
            cancel(reason) {
              branch._cancelledBranch = true;
              if (++cancelled === 2) return reader.cancel(reason);
            },
          }, { highWaterMark: 0 });
          return branch;
        };
        branches.push(make(), make());
        reader.closed.catch((e) => branches.forEach((b) => b._error(e)));
        return branches;
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

    // What both readers share: locking, closed, cancel, releaseLock.
    class ReaderBase {
      _stream; _requests = []; _closed = deferred();
      constructor(stream) {
        if (!(stream instanceof ReadableStream)) throw new TypeError(`${new.target.name}: expected a ReadableStream`);
        if (stream.locked) throw new TypeError("ReadableStream: the stream is already locked to a reader");
        this._stream = stream;
        stream._reader = this;
        if (stream._state === "closed") this._closed.resolve();
        if (stream._state === "errored") this._closed.reject(stream._storedError);
      }
      get closed() { return this._closed.promise; }
      cancel(reason) {
        if (!this._stream) return Promise.reject(new TypeError("cancel: the reader was released"));
        return this._stream._cancel(reason);
      }
      releaseLock() {
        if (!this._stream) return;
        for (const request of this._requests.splice(0)) request.reject(new TypeError("the reader was released"));
        this._stream._reader = null;
        this._stream._byob = null;
        this._stream = null;
      }
    }
    class ReadableStreamDefaultReader extends ReaderBase {
      read() {
        if (!this._stream) return Promise.reject(new TypeError("read: the reader was released"));
        return this._stream._read();
      }
    }
    class ReadableStreamBYOBReader extends ReaderBase {
      constructor(stream) {
        if (stream instanceof ReadableStream && !stream._bytes) {
          throw new TypeError("ReadableStreamBYOBReader: the stream is not a byte stream (create it with type: \"bytes\")");
        }
        super(stream);
      }
      read(view) {
        if (!this._stream) return Promise.reject(new TypeError("read: the reader was released"));
        if (!ArrayBuffer.isView(view)) return Promise.reject(new TypeError("ReadableStreamBYOBReader.read: expected an ArrayBufferView"));
        if (view.byteLength === 0) return Promise.reject(new TypeError("ReadableStreamBYOBReader.read: the view is empty"));
        return this._stream._readInto(view);
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
      error(reason) { this.#stream._error(reason); }
      get signal() { return this.#stream._abort.signal; }
    }

    class WritableStream {
      _state = "writable"; _writer = null; _storedError = undefined; _chain; _pending = 0;
      constructor(sink = {}, strategy = {}) {
        this._sink = sink ?? {};
        this._hwm = hwm(strategy, 1);
        this._abort = new AbortController();
        this._controller = new WritableStreamDefaultController(this);
        this._chain = Promise.resolve().then(() => this._sink.start?.(this._controller));
        this._chain.catch((e) => this._error(e));
      }
      get locked() { return this._writer !== null; }
      _error(reason) {
        if (this._state === "errored") return;
        this._state = "errored";
        this._storedError = reason;
        this._writer?._closed.reject(reason);
      }
      _enqueue(step) {
        this._pending++;
        const result = this._chain.then(() => {
          if (this._state === "errored") throw this._storedError;
          return step();
        });
        this._chain = result.then(() => { this._pending--; }, (e) => { this._pending--; this._error(e); });
        return result;
      }
      getWriter() { return new WritableStreamDefaultWriter(this); }
      abort(reason) {
        if (this.locked) return Promise.reject(new TypeError("WritableStream.abort: the stream is locked"));
        return this._abortNow(reason);
      }
      async _abortNow(reason) {
        this._abort.abort(reason);
        this._error(reason);
        await this._sink.abort?.(reason);
      }
      close() {
        if (this.locked) return Promise.reject(new TypeError("WritableStream.close: the stream is locked"));
        return this._closeNow();
      }
      _closeNow() {
        if (this._state !== "writable") return Promise.reject(new TypeError("WritableStream: already closed or errored"));
        this._state = "closing";
        return this._enqueue(() => this._sink.close?.()).then(() => {
          this._state = "closed";
          this._writer?._closed.resolve();
        });
      }
    }

    class WritableStreamDefaultWriter {
      _stream; _closed = deferred();
      constructor(stream) {
        if (stream.locked) throw new TypeError("WritableStream: the stream is already locked to a writer");
        this._stream = stream;
        stream._writer = this;
        if (stream._state === "errored") this._closed.reject(stream._storedError);
      }
      get closed() { return this._closed.promise; }
      get ready() { return this._stream ? this._stream._chain.then(() => undefined) : Promise.reject(new TypeError("released")); }
      get desiredSize() { return this._stream ? this._stream._hwm - this._stream._pending : null; }
      write(chunk) {
        const stream = this._stream;
        if (!stream) return Promise.reject(new TypeError("write: the writer was released"));
        if (stream._state !== "writable") return Promise.reject(stream._storedError ?? new TypeError("write: the stream is closed"));
        return stream._enqueue(() => stream._sink.write?.(chunk, stream._controller));
      }
      close() { return this._stream ? this._stream._closeNow() : Promise.reject(new TypeError("released")); }
      abort(reason) { return this._stream ? this._stream._abortNow(reason) : Promise.reject(new TypeError("released")); }
      releaseLock() {
        if (!this._stream) return;
        this._stream._writer = null;
        this._stream = null;
      }
    }

    // ---- TransformStream ----------------------------------------------------------------------------
    class TransformStreamDefaultController {
      #readable;
      constructor(readable) { this.#readable = readable; }
      get desiredSize() { return this.#readable._desiredSize(); }
      enqueue(chunk) { this.#readable._enqueue(chunk); }
      error(reason) { this.#readable._error(reason); }
      terminate() { this.#readable._requestClose(); }
    }

    class TransformStream {
      #readable; #writable;
      constructor(transformer = {}, writableStrategy = {}, readableStrategy = {}) {
        let controller;
        this.#readable = new ReadableStream({ start: () => {} }, readableStrategy ?? { highWaterMark: 0 });
        controller = new TransformStreamDefaultController(this.#readable);
        const readable = this.#readable;
        const started = Promise.resolve().then(() => transformer?.start?.(controller));
        this.#writable = new WritableStream({
          start: () => started,
          write: (chunk) => (transformer?.transform ? transformer.transform(chunk, controller) : controller.enqueue(chunk)),
          close: async () => {
            await transformer?.flush?.(controller);
            if (readable._state === "readable" && !readable._closeRequested) readable._requestClose();
          },
          abort: (reason) => readable._error(reason),
        }, writableStrategy);
      }
      get readable() { return this.#readable; }
      get writable() { return this.#writable; }
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
      TextDecoderStream);
    return { ReadableStream, ReadableStreamDefaultReader, ReadableStreamDefaultController,
      ReadableStreamBYOBReader, ReadableByteStreamController, ReadableStreamBYOBRequest, WritableStream,
      WritableStreamDefaultWriter, WritableStreamDefaultController, TransformStream,
      TransformStreamDefaultController, TextEncoderStream, TextDecoderStream, bytesStream };
  }
