// Placeholder so the library has a source until the checkpoint code lands.
namespace hybridserve::engine {}
