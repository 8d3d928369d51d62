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

const char* errno_name(int err);
