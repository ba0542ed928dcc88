// hutch pull. (Stub: filled in with its milestone.)
import { HutchError } from '../../errors.js';
import type { Command } from '../command.js';

export const command: Command = {
  usage: 'hutch pull',
  summary: 'pull (not implemented yet)',
  flags: [],
  async run() {
    throw new HutchError('EUNSUPPORTED', 'pull is not implemented yet');
  },
};
