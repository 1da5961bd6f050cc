// What the addon does with V8's own API: results whose memory goes back to the cache during garbage
// collection, not after the task, and borrowed inputs of async calls pinned against a transfer.
//
// Node-API runs the finalizer of an external ArrayBuffer from a task queued after the collection
// (Node 20 does so even for the experimental "basic" finalizers), so a training loop that never
// awaits gets none of its dropped results back until it ends: every call of such a loop mapped
// fresh pages, and on these VMs the page faults cost more than the kernel. A V8 backing store with a
// deleter is freed by the collector itself (during the collection, or by its background sweeper),
// so a dropped result is back in the cache for the next call or the one after.
//
// This uses V8's own API, which is not ABI-stable across Node majors: it is compiled only where the
// build found the headers of the Node it builds for (CMake: KDFUSE_GC_RELEASE) and used only when the
// running Node has the same major version; everywhere else results fall back to Node-API's
// finalizers (docs/design.md, "Result memory").
#pragma once
#include <cstddef>
#include <cstdint>

namespace kdfuse_addon {

using GcDeleter = void (*)(void* data, size_t bytes, void* hint);

// An ArrayBuffer over `data` whose `deleter` runs when V8 frees it (possibly on a V8 background
// thread), returned as a napi_value's bits; null when this build or this Node cannot.
void* gc_released_arraybuffer(void* data, size_t bytes, GcDeleter deleter);

// Keeps the memory of a typed array's buffer alive until unpin_buffer, even if JavaScript detaches
// or transfers the buffer meanwhile (V8 frees a backing store only when its last holder lets go).
// `typed_array` is a napi_value's bits; returns the pin (null when this build cannot) and sets
// *data to the array's first byte.
void* pin_buffer(void* typed_array, void** data);
void unpin_buffer(void* pin);

// Asks V8 for a full collection now (from the JavaScript thread).
void gc_release_collect();

// Whether gc_released_arraybuffer may be used under a Node of this major version: this build has
// it, and was compiled against that major's headers.
bool gc_release_usable(uint32_t running_node_major);

}  // namespace kdfuse_addon
