import { samePerson } from "../../domain/review.js";

/** A reviewer as the Slack integration knows them. */
export interface SlackPerson {
  readonly reviewerId: string;
  readonly groups: readonly string[];
  /** Configured explicitly: the strong link. */
  readonly slackUserId?: string;
  /** Used only when matching by email is on. */
  readonly email?: string;
}

/**
 * Who is who between Slack and writ. A Slack user is a reviewer only through
 * explicit configuration (`slack_user_id`), or, when turned on, a confirmed
 * Slack email equal to a reviewer's configured `email`. Nothing else (display
 * names, handles) ever maps.
 */
export interface SlackDirectory {
  /** The reviewer id configured for this Slack user. */
  reviewerFor(slackUserId: string): string | undefined;
  /** The reviewer id whose configured email is `email` (case-insensitive). */
  reviewerForEmail(email: string): string | undefined;
  /** The Slack user id of a reviewer or agent owner, for mentions and DMs. */
  slackUserOf(personId: string): string | undefined;
  /**
   * Every Slack user id writ links to this person id: the `slack_user_id` of a
   * reviewer who is that person, and the person's `slack.owner_user_ids` entry.
   * Person ids compare as {@link samePerson} does (case and NFKC folded).
   */
  slackUsersOf(personId: string): string[];
  /** Slack user ids of the configured members of `group`. */
  members(group: string): string[];
}

export function createSlackDirectory(
  people: readonly SlackPerson[],
  owners: Readonly<Record<string, string>> = {},
): SlackDirectory {
  const bySlack = new Map<string, string>();
  const byEmail = new Map<string, string>();
  const slackOf = new Map<string, string>();
  for (const person of people) {
    if (person.slackUserId !== undefined) {
      const other = bySlack.get(person.slackUserId);
      if (other !== undefined && other !== person.reviewerId) {
        throw new TypeError(
          `Slack user ${person.slackUserId} is linked to two reviewers: ${other} and ${person.reviewerId}`,
        );
      }
      bySlack.set(person.slackUserId, person.reviewerId);
      slackOf.set(person.reviewerId, person.slackUserId);
    }
    if (person.email !== undefined) {
      const email = person.email.toLowerCase();
      const other = byEmail.get(email);
      if (other !== undefined && other !== person.reviewerId) {
        throw new TypeError(`email ${person.email} is configured for two reviewers`);
      }
      byEmail.set(email, person.reviewerId);
    }
  }
  const ownerLinks = Object.entries(owners);
  const slackUsersOf = (personId: string): string[] => [
    ...new Set([
      ...people
        .filter((p) => p.slackUserId !== undefined && samePerson(p.reviewerId, personId))
        .map((p) => p.slackUserId as string),
      ...ownerLinks.filter(([ownerId]) => samePerson(ownerId, personId)).map(([, id]) => id),
    ]),
  ];
  return {
    reviewerFor: (slackUserId) => bySlack.get(slackUserId),
    reviewerForEmail: (email) => byEmail.get(email.toLowerCase()),
    // The reviewer link first: it is the account the person reviews with.
    slackUserOf: (personId) => slackOf.get(personId) ?? slackUsersOf(personId)[0],
    slackUsersOf,
    members: (group) =>
      people
        .filter((p) => p.groups.includes(group) && p.slackUserId !== undefined)
        .map((p) => p.slackUserId as string),
  };
}
