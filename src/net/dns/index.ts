// hutch's sandbox DNS server and the codec it is built on (see server.ts for the contract).
export { startDnsServer, type DnsDecision, type DnsServer, type DnsServerOptions } from './server.js';
export { hostResolvers, type DnsEndpoint } from './upstream.js';
export {
  DnsRcode, DnsType, addressesInAnswer, buildFormatError, buildQuery, buildResponse, parseQuery, parseResponse,
  type DnsAddress, type DnsAnswerRecord, type DnsQuery, type DnsRecord, type DnsResponse,
} from './message.js';
