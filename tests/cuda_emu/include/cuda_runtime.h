#include "emu_cuda.h"
#include "emu_runtime.h"
