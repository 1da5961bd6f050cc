// See gc_release.h. This translation unit alone includes V8's headers.
#include "gc_release.h"

#ifdef KDFUSE_GC_RELEASE
#include <v8.h>

#include <dlfcn.h>

#include <cstring>
#include <memory>
#endif

namespace kdfuse_addon {

#ifdef KDFUSE_GC_RELEASE

namespace {
// The deleters of results (and the shared_ptr control blocks of their backing stores) are code of
// this library, and V8 may run them after the environment that loaded it is gone: Node unloads the
// addons a worker_thread loaded when that worker's environment is destroyed, before its isolate
// frees what is left. So the library is made never to unload (RTLD_NODELETE on itself); where that
// cannot be done, results go through Node-API's finalizers instead.
bool keep_library_loaded() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&keep_library_loaded), &info) == 0 || !info.dli_fname) return false;
  return dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
}
}  // namespace

bool gc_release_usable(uint32_t running_node_major) {
  // V8's ABI is stable within a Node major version, not across them.
  static const bool loaded_for_good = keep_library_loaded();
  return running_node_major == KDFUSE_NODE_MAJOR && loaded_for_good;
}

void* gc_released_arraybuffer(void* data, size_t bytes, GcDeleter deleter) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (!isolate) return nullptr;
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, bytes, deleter, nullptr);
  v8::Local<v8::Value> ab = v8::ArrayBuffer::New(isolate, std::move(store));
  // A napi_value is a v8::Local's single pointer: Node converts one into the other with the same copy
  // (js_native_api_v8.h, V8LocalValueFromJsValue).
  static_assert(sizeof(ab) == sizeof(void*), "v8::Local is not one pointer");
  void* out;
  std::memcpy(&out, &ab, sizeof(out));
  return out;
}

void* pin_buffer(void* typed_array, void** data) {
  v8::Local<v8::Value> v;
  std::memcpy(static_cast<void*>(&v), &typed_array, sizeof(typed_array));
  if (v.IsEmpty() || !v->IsArrayBufferView()) return nullptr;
  const v8::Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
  auto* pin = new std::shared_ptr<v8::BackingStore>(view->Buffer()->GetBackingStore());
  // A resizable ArrayBuffer can be shrunk in place while the worker reads it, and V8 then makes the
  // cut-off pages inaccessible: holding the store does not keep them. Such inputs are copied.
  // (A growable SharedArrayBuffer only grows: borrowing it is safe.)
  if ((*pin)->IsResizableByUserJavaScript() && !(*pin)->IsShared()) {
    delete pin;
    return nullptr;
  }
  *data = static_cast<char*>((*pin)->Data()) + view->ByteOffset();
  return pin;
}

void unpin_buffer(void* pin) { delete static_cast<std::shared_ptr<v8::BackingStore>*>(pin); }

void gc_release_collect() {
  if (v8::Isolate* isolate = v8::Isolate::GetCurrent())
    isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
}

#else

void* pin_buffer(void*, void**) { return nullptr; }
void unpin_buffer(void*) {}
void gc_release_collect() {}
bool gc_release_usable(uint32_t) { return false; }
void* gc_released_arraybuffer(void*, size_t, GcDeleter) { return nullptr; }

#endif

}  // namespace kdfuse_addon
