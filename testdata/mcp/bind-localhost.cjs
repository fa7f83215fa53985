// Preloaded by the tests (node -r ./bind-localhost.cjs ...): the reference
// MCP server listens on every address; this binds its port to 127.0.0.1
// only, so the test server is never reachable from the network.
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const cb = args.find((a) => typeof a === 'function');
    return listen.call(this, Number(args[0]), '127.0.0.1', cb);
  }
  return listen.apply(this, args);
};
