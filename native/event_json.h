// Tracer events as JSON text: a delivered batch crosses to JS as one string that JSON.parse
// turns into the event objects (src/native.ts). V8 builds objects through N-API one property
// at a time on a slow path (about 20 µs per socket event here, two per connect); its JSON
// parser builds the same objects in a fraction of that.
#pragma once
#include <string>
#include <vector>

#include "trace_event.h"

// Appends `[event, ...]` to out; the field names are src/native.ts's TraceEvent. Returns
// whether all of it is ASCII (V8 then copies it as Latin-1, without decoding UTF-8).
bool append_events_json(const std::vector<TraceEvent>& batch, std::string* out);

// Merges each kPending event into the kSocket event that ends its call later in the same batch
// (same thread, socket and call, nothing of that thread between): one event per call crosses
// to JS instead of two. The controller applies a batch's events back to back, so the pair
// meant nothing apart; the merged event carries the pending one's time and rules ("entry").
void merge_pending_events(std::vector<TraceEvent>* batch);

const char* errno_name(int err);
