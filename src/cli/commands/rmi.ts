// hutch rmi. (Stub: filled in with its milestone.)
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch rmi',
  summary: 'rmi (not implemented yet)',
  flags: [],
  async run() {
    throw new HutchError('EUNSUPPORTED', 'rmi is not implemented yet');
  },
};
