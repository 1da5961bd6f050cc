// See gc_release.h. This translation unit alone includes V8's headers.
#include "gc_release.h"

#ifdef KDFUSE_GC_RELEASE
#include <v8.h>

#include <cstring>
#include <memory>
#endif

namespace kdfuse_addon {

#ifdef KDFUSE_GC_RELEASE

bool gc_release_usable(uint32_t running_node_major) {
  // V8's ABI is stable within a Node major version, not across them.
  return running_node_major == KDFUSE_NODE_MAJOR;
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
